package dps

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// Registrar is the device registration use case, written once and called by
// every transport (HTTPS, MQTT, later AMQP).
type Registrar struct {
	store   Store
	idScope string
	hubs    Allocator
	now     func() time.Time
	skew    time.Duration
	log     *slog.Logger
	audit   Auditor
	proofs  proofCache // proofs accepted recently, for polls
}

// RegistrarOptions configure a Registrar.
type RegistrarOptions struct {
	IDScope string
	Hubs    Allocator
	Now     func() time.Time // time.Now when nil
	Skew    time.Duration    // clock skew tolerated on token expiry
	Logger  *slog.Logger
	Auditor Auditor // told of every refused device; nil records nothing
}

// NewRegistrar returns the registration use case.
func NewRegistrar(store Store, opts RegistrarOptions) *Registrar {
	r := &Registrar{store: store, idScope: opts.IDScope, hubs: opts.Hubs, now: opts.Now, skew: opts.Skew, log: opts.Logger, audit: opts.Auditor}
	if r.audit == nil {
		r.audit = nopAuditor{}
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r
}

// IDScope is the scope devices must name.
func (r *Registrar) IDScope() string { return r.idScope }

// RegisterRequest is one device's registration request.
type RegisterRequest struct {
	IDScope        string
	RegistrationID string // from the URL path or the MQTT connection
	Proof          Proof
	// BodyRegistrationID is the registrationId in the body, "" when the
	// body has none (C# over MQTT, empty MQTT bodies).
	BodyRegistrationID string
	Payload            map[string]any
}

// Register authenticates the device and assigns it. Authentication and
// request errors are returned as faults (no operation exists then);
// otherwise the returned operation is finished: assigned, failed or disabled.
// Transports answer "assigning" first, as Azure's clients require, and give
// the result to the poll.
func (r *Registrar) Register(ctx context.Context, req RegisterRequest) (Operation, error) {
	if err := ValidateID("registration ID", req.RegistrationID); err != nil {
		return Operation{}, err
	}
	if req.BodyRegistrationID != "" && !strings.EqualFold(req.BodyRegistrationID, req.RegistrationID) {
		return Operation{}, fault.New(fault.Invalid, "registrationId %q in the body does not match %q", req.BodyRegistrationID, req.RegistrationID)
	}
	now := r.now().UTC()
	adm, err := r.attest(ctx, req.IDScope, req.RegistrationID, req.Proof, now)
	if err != nil {
		return Operation{}, err
	}
	op := Operation{ID: newOperationID(), RegistrationID: req.RegistrationID, Created: now}
	var record *Registration
	if adm.disabled() {
		r.audit.Refused(ctx, Refusal{IDScope: req.IDScope, RegistrationID: req.RegistrationID, Reason: adm.disabledReason(), Time: now})
		op.Status = StatusOff
		op.Registration = Registration{RegistrationID: req.RegistrationID, GroupID: adm.groupID(), Status: StatusOff, ETag: newETag(), Created: now, Updated: now}
	} else {
		op.Registration = r.assign(ctx, req, adm, now)
		op.Status = op.Registration.Status
		record = &op.Registration
	}
	if err := r.store.PutOperation(ctx, op, record); err != nil {
		return Operation{}, err
	}
	return op, nil
}

func (a admission) disabled() bool {
	return a.settings().ProvisioningStatus == Disabled
}

func (a admission) disabledReason() string {
	if a.enrollment != nil {
		return "the individual enrollment is disabled"
	}
	return "enrollment group " + a.group.ID + " is disabled"
}

func (a admission) groupID() string {
	if a.group != nil {
		return a.group.ID
	}
	return ""
}

// assign allocates a hub and creates or updates the device there. A hub
// failure becomes a failed registration, not an error of the request.
func (r *Registrar) assign(ctx context.Context, req RegisterRequest, adm admission, now time.Time) Registration {
	set := adm.settings()
	reg := Registration{RegistrationID: req.RegistrationID, GroupID: adm.groupID(), DeviceID: req.RegistrationID,
		Payload: req.Payload, ETag: newETag(), Created: now, Updated: now, Substatus: "initialAssignment"}
	if adm.enrollment != nil && adm.enrollment.DeviceID != "" {
		reg.DeviceID = adm.enrollment.DeviceID
	}
	prev, err := r.store.Registration(ctx, req.RegistrationID)
	reprovision := err == nil && prev.Status == Assigned
	if reprovision {
		reg.Created = prev.Created
		policy := set.ReprovisionPolicy
		if policy == nil {
			policy = &ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
		}
		reg.Substatus = "deviceDataMigrated"
		if !policy.MigrateDeviceData {
			reg.Substatus = "deviceDataReset"
		}
	}
	hub, err := r.hubs.Allocate(ctx, AllocationRequest{RegistrationID: req.RegistrationID, Settings: set, CurrentHub: prev.AssignedHub, Payload: req.Payload})
	if err != nil {
		return r.failed(ctx, reg, 400208, "no IoT hub is available for this device", err)
	}
	a := Assignment{DeviceID: reg.DeviceID, PrimaryKey: adm.primaryKey, SecondaryKey: adm.secondaryKey, IoTEdge: set.IoTEdge,
		InitialTwin: set.InitialTwin, ResetTwin: reprovision && reg.Substatus == "deviceDataReset"}
	if err := hub.Assign(ctx, a); err != nil {
		return r.failed(ctx, reg, 500000+int(fault.KindOf(err)), "the IoT hub refused the device: "+fault.MessageOf(err), err)
	}
	reg.Status, reg.AssignedHub = Assigned, hub.HostName()
	return reg
}

func (r *Registrar) failed(ctx context.Context, reg Registration, code int, msg string, cause error) Registration {
	r.log.WarnContext(ctx, "registration failed", "registrationId", reg.RegistrationID, "trackingId", OriginFrom(ctx).TrackingID, "err", cause)
	reg.Status, reg.Substatus, reg.ErrorCode, reg.ErrorMessage = Failed, "", code, msg
	return reg
}

// OperationStatus answers a device's poll for one of its operations. The
// poll carries the same proof as the request.
func (r *Registrar) OperationStatus(ctx context.Context, idScope, registrationID, operationID string, proof Proof) (Operation, error) {
	now := r.now()
	if !r.proofs.accepted(proofKey(idScope, registrationID, proof), now) {
		if _, err := r.attest(ctx, idScope, registrationID, proof, now); err != nil {
			return Operation{}, err
		}
	}
	op, err := r.store.Operation(ctx, operationID)
	if fault.Is(err, fault.NotFound) || err == nil && !strings.EqualFold(op.RegistrationID, registrationID) {
		return Operation{}, fault.New(fault.NotFound, "operation %q does not exist for registration %q", operationID, registrationID)
	}
	return op, err
}

// RegistrationStatus returns the device's own registration record (the
// device API's status lookup).
func (r *Registrar) RegistrationStatus(ctx context.Context, idScope, registrationID string, proof Proof) (Registration, error) {
	if _, err := r.attest(ctx, idScope, registrationID, proof, r.now()); err != nil {
		return Registration{}, err
	}
	reg, err := r.store.Registration(ctx, registrationID)
	if fault.Is(err, fault.NotFound) {
		return reg, fault.New(fault.NotFound, "registration %q does not exist", registrationID)
	}
	return reg, err
}

// ExpireOperations deletes operations older than OperationTTL; servers call
// it periodically.
func (r *Registrar) ExpireOperations(ctx context.Context) (int, error) {
	return r.store.DeleteOperationsBefore(ctx, r.now().Add(-OperationTTL))
}
