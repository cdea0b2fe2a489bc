package dps

import (
	"context"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// Proof is what a device presents to prove who it is. Today a SAS token;
// X.509 client certificates and TPM challenges join here.
type Proof struct {
	SASToken string
}

// admission is the outcome of attestation: the enrollment or group that
// admits the device, and the keys its hub identity gets.
type admission struct {
	enrollment   *Enrollment
	group        *Group
	primaryKey   string
	secondaryKey string
}

func (a admission) settings() *Settings {
	if a.enrollment != nil {
		return &a.enrollment.Settings
	}
	return &a.group.Settings
}

// denied is the one answer for every failed proof: it does not tell a
// caller whether the ID scope, the enrollment or the key was wrong.
func denied(reason string) error {
	return fault.Wrap(fault.Unauthenticated, fault.New(fault.Unauthenticated, "%s", reason), "the device could not be authenticated")
}

// attest verifies a proof (prove) and reports a refused one to the
// auditor with its reason; the caller answers with denied's generic message.
func (r *Registrar) attest(ctx context.Context, idScope, registrationID string, proof Proof, now time.Time) (admission, error) {
	adm, err := r.prove(ctx, idScope, registrationID, proof, now)
	if fault.Is(err, fault.Unauthenticated) {
		r.audit.Refused(ctx, Refusal{IDScope: idScope, RegistrationID: registrationID, Reason: reasonOf(err), Time: now})
	}
	return adm, err
}

// prove verifies a SAS proof for registrationID under idScope
// (dps-protocol.md §3.2): the HMAC over sr exactly as sent, the audience
// compared case-insensitively after percent-decoding, the expiry with skew;
// then the individual enrollment's keys, else each group's derived keys.
func (r *Registrar) prove(ctx context.Context, idScope, registrationID string, proof Proof, now time.Time) (admission, error) {
	if !strings.EqualFold(idScope, r.idScope) {
		return admission{}, denied("unknown ID scope " + idScope)
	}
	tok, err := sas.Parse(proof.SASToken)
	if err != nil {
		return admission{}, denied(fault.MessageOf(err))
	}
	res, err := tok.Resource()
	if err != nil || !strings.EqualFold(strings.TrimSuffix(res, "/"), idScope+"/registrations/"+registrationID) {
		return admission{}, denied("token audience " + res + " is not this registration")
	}
	if tok.Expiry.Before(now.Add(-r.skew)) {
		return admission{}, denied("token expired at " + tok.Expiry.UTC().Format(time.RFC3339))
	}
	adm, err := r.verifyKeys(ctx, tok, registrationID, now)
	if err == nil && adm.admits() {
		r.proofs.remember(proofKey(idScope, registrationID, proof), now, tok.Expiry.Add(r.skew))
	}
	return adm, err
}

// admits reports an admission whose proof matched a key (a disabled
// individual enrollment that blocks a group member admits nothing).
func (a admission) admits() bool { return a.primaryKey != "" }

// verifyKeys checks the token's signature against the individual
// enrollment's keys, else each group's derived keys.
func (r *Registrar) verifyKeys(ctx context.Context, tok sas.Token, registrationID string, now time.Time) (admission, error) {
	e, err := r.store.Enrollment(ctx, registrationID)
	switch {
	case err == nil:
		if tok.VerifyAny(now, r.skew, e.Attestation.PrimaryKey, e.Attestation.SecondaryKey) == nil {
			return admission{enrollment: &e, primaryKey: e.Attestation.PrimaryKey, secondaryKey: e.Attestation.SecondaryKey}, nil
		}
		// An individual enrollment takes precedence over groups: a disabled
		// one blocks a device that proves itself with its group's key.
		if e.ProvisioningStatus == Disabled {
			if _, err := r.attestGroup(ctx, tok, registrationID, now); err == nil {
				return admission{enrollment: &e}, nil
			}
		}
		return admission{}, denied("signature does not match the individual enrollment's keys")
	case !fault.Is(err, fault.NotFound):
		return admission{}, err
	}
	return r.attestGroup(ctx, tok, registrationID, now)
}

// groupPage is how many groups attestation reads at a time.
const groupPage = 200

func (r *Registrar) attestGroup(ctx context.Context, tok sas.Token, registrationID string, now time.Time) (admission, error) {
	after := ""
	for {
		groups, err := r.store.Groups(ctx, after, groupPage)
		if err != nil {
			return admission{}, err
		}
		for i := range groups {
			g := &groups[i]
			if g.Attestation.Type != SymmetricKey {
				continue
			}
			p, err1 := sas.DeriveDeviceKey(g.Attestation.PrimaryKey, registrationID)
			s, err2 := sas.DeriveDeviceKey(g.Attestation.SecondaryKey, registrationID)
			if err1 != nil || err2 != nil {
				continue
			}
			if tok.VerifyAny(now, r.skew, p, s) == nil {
				return admission{group: g, primaryKey: p, secondaryKey: s}, nil
			}
		}
		if len(groups) < groupPage {
			return admission{}, denied("no enrollment or enrollment group admits this registration ID and key")
		}
		after = IDKey(groups[len(groups)-1].ID)
	}
}
