package httpapi

import (
	"bytes"
	"net/http"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/wire"
)

// deviceRoutes are the DPS device API (dps-protocol.md §2.1). The device's
// proof is checked by the registrar, not by a policy.
func (a *API) deviceRoutes() []route {
	return []route{
		{http.MethodPut, []string{"*", "registrations", "*", "register"}, dpsDevice, 0, register},
		{http.MethodGet, []string{"*", "registrations", "*", "operations", "*"}, dpsDevice, 0, pollOperation},
		{http.MethodPost, []string{"*", "registrations", "*"}, dpsDevice, 0, registrationStatus},
	}
}

func (c *call) proof() dps.Proof {
	return dps.Proof{SASToken: c.r.Header.Get("Authorization")}
}

// deviceBody decodes an optional DeviceRegistration body.
func (c *call) deviceBody() (wire.DeviceRegistration, error) {
	var body wire.DeviceRegistration
	b, err := c.body()
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return body, err
	}
	if err := wire.Decode(b, &body); err != nil {
		return body, err
	}
	if body.TPM != nil {
		return body, fault.New(fault.Unsupported, "TPM attestation is not supported yet; use a symmetric key")
	}
	return body, nil
}

// register answers 202 "assigning" with the operation to poll: C# and
// aziot-identityd accept nothing else from this PUT (§2.6). The work is
// already done; the poll returns it.
func register(c *call) error {
	body, err := c.deviceBody()
	if err != nil {
		return err
	}
	op, err := c.api.registrar.Register(c.ctx(), dps.RegisterRequest{
		IDScope: c.params[0], RegistrationID: c.params[1], Proof: c.proof(),
		BodyRegistrationID: body.RegistrationID, Payload: body.Payload,
	})
	c.outcome = dps.RegistrationOutcome(op, err)
	if err != nil {
		return err
	}
	c.w.Header().Set("Retry-After", c.api.retryAfter)
	c.w.Header().Set("Location", "https://"+c.r.Host+c.r.URL.EscapedPath())
	writeJSON(c.w, http.StatusAccepted, wire.Assigning(op))
	return nil
}

func pollOperation(c *call) error {
	op, err := c.api.registrar.OperationStatus(c.ctx(), c.params[0], c.params[1], c.params[2], c.proof())
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromOperation(op))
	return nil
}

func registrationStatus(c *call) error {
	if _, err := c.deviceBody(); err != nil {
		return err
	}
	reg, err := c.api.registrar.RegistrationStatus(c.ctx(), c.params[0], c.params[1], c.proof())
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromDeviceRegistration(reg))
	return nil
}
