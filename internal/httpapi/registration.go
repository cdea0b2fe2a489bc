package httpapi

import (
	"net/http"
	"strconv"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/throttle"
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

// admit asks the node's limits (internal/throttle) whether this device
// request is served now. A refusal is fault.Throttled with the limiter's
// Retry-After already set, so fail renders Azure's 429 (dps-protocol.md
// §2.7); every SDK repeats the request after it (Node: status ≥ 429 is
// "registering"/"assigning" again; C: ≥ 429 is transient). The caller
// charges the decision once the registrar accepted the device's proof.
func (c *call) admit(class throttle.Class) (throttle.Decision, error) {
	d := c.api.limits.Admit(throttle.Request{Transport: "https", Class: class, DeviceID: c.params[1], Source: c.r.RemoteAddr})
	if !d.OK {
		c.w.Header().Set("Retry-After", strconv.Itoa(d.RetryAfterSeconds()))
	}
	return d, d.Err()
}

func (c *call) proof() dps.Proof {
	return dps.Proof{SASToken: c.r.Header.Get("Authorization")}
}

// deviceBody decodes an optional DeviceRegistration body.
func (c *call) deviceBody() (wire.DeviceRegistration, error) {
	b, err := c.body()
	if err != nil {
		return wire.DeviceRegistration{}, err
	}
	return wire.DecodeDeviceRegistration(b)
}

// register answers 202 "assigning" with the operation to poll: C# and
// aziot-identityd accept nothing else from this PUT (§2.6). The work is
// already done; the poll returns it.
func register(c *call) error {
	limit, err := c.admit(throttle.Registration)
	if err != nil {
		return err
	}
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
	limit.Charge()
	c.w.Header().Set("Retry-After", c.api.retryAfter)
	c.w.Header().Set("Location", "https://"+c.r.Host+c.r.URL.EscapedPath())
	writeJSON(c.w, http.StatusAccepted, wire.Assigning(op))
	return nil
}

// pollOperation and registrationStatus count against the looser per-device
// poll limit and the per-source limit, never the node's registration limit:
// they are reads, and a device polls once or twice per registration.
func pollOperation(c *call) error {
	limit, err := c.admit(throttle.Poll)
	if err != nil {
		return err
	}
	op, err := c.api.registrar.OperationStatus(c.ctx(), c.params[0], c.params[1], c.params[2], c.proof())
	if err != nil {
		return err
	}
	limit.Charge()
	writeJSON(c.w, http.StatusOK, wire.FromOperation(op))
	return nil
}

func registrationStatus(c *call) error {
	limit, err := c.admit(throttle.Poll)
	if err != nil {
		return err
	}
	if _, err := c.deviceBody(); err != nil {
		return err
	}
	reg, err := c.api.registrar.RegistrationStatus(c.ctx(), c.params[0], c.params[1], c.proof())
	if err != nil {
		return err
	}
	limit.Charge()
	writeJSON(c.w, http.StatusOK, wire.FromDeviceRegistration(reg))
	return nil
}
