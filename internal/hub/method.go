package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// Direct method limits (hub-protocol.md §3.1; IoT Hub's direct methods
// guide: response timeout 5–300 s, default 30 s; payload up to 128 KB).
const (
	DefaultMethodTimeout  = 30 * time.Second
	MinMethodTimeout      = 5 * time.Second
	MaxMethodTimeout      = 300 * time.Second
	MaxMethodPayloadBytes = 128 << 10
	MaxMethodNameBytes    = 128
)

// MethodCall is a direct method invocation on a device (ModuleID "") or a
// module.
type MethodCall struct {
	DeviceID string
	ModuleID string
	Name     string
	Payload  json.RawMessage // any JSON value; null when empty
	// ResponseTimeout is how long to wait for the answer: DefaultMethodTimeout
	// when 0, else MinMethodTimeout..MaxMethodTimeout.
	ResponseTimeout time.Duration
	// ConnectTimeout (0..MaxMethodTimeout) is how long IoT Hub waits for an
	// offline device to connect. It is checked but not waited on: a target
	// that is not connected fails at once.
	ConnectTimeout time.Duration
}

// MethodResult is the device's answer: its status and its JSON payload.
type MethodResult struct {
	Status  int
	Payload json.RawMessage
}

func (c *MethodCall) validate() error {
	switch {
	case c.Name == "":
		return fault.New(fault.Invalid, "methodName is required")
	case len(c.Name) > MaxMethodNameBytes:
		return fault.New(fault.Invalid, "methodName is %d bytes; the limit is %d", len(c.Name), MaxMethodNameBytes)
	case strings.ContainsAny(c.Name, "/+#?") || hasControl(c.Name):
		// the name becomes an MQTT topic level: $iothub/methods/POST/{name}/?$rid=
		return fault.New(fault.Invalid, "methodName %q must not contain '/', '+', '#', '?' or control characters", c.Name)
	}
	if c.ResponseTimeout == 0 {
		c.ResponseTimeout = DefaultMethodTimeout
	}
	if c.ResponseTimeout < MinMethodTimeout || c.ResponseTimeout > MaxMethodTimeout {
		return fault.New(fault.Invalid, "responseTimeoutInSeconds must be %d to %d; got %s", int(MinMethodTimeout.Seconds()), int(MaxMethodTimeout.Seconds()), seconds(c.ResponseTimeout))
	}
	if c.ConnectTimeout < 0 || c.ConnectTimeout > MaxMethodTimeout {
		return fault.New(fault.Invalid, "connectTimeoutInSeconds must be 0 to %d; got %s", int(MaxMethodTimeout.Seconds()), seconds(c.ConnectTimeout))
	}
	if len(c.Payload) > MaxMethodPayloadBytes {
		return fault.New(fault.TooLarge, "the method payload is %d bytes; the limit is %d", len(c.Payload), MaxMethodPayloadBytes)
	}
	if len(c.Payload) == 0 {
		c.Payload = json.RawMessage("null")
	}
	if !json.Valid(c.Payload) {
		return fault.New(fault.Invalid, "the method payload is not JSON")
	}
	return nil
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// InvokeMethod calls a direct method on a connected device or module and
// waits for its answer (POST /twins/{id}[/modules/{mid}]/methods). Errors:
// fault.NotFound for an unknown device or module, fault.NotFound with
// ReasonDeviceNotOnline when it is not connected or does not listen for
// methods, fault.Timeout when it does not answer within ResponseTimeout,
// fault.Invalid or fault.TooLarge for a bad call.
func (s *Service) InvokeMethod(ctx context.Context, call MethodCall) (MethodResult, error) {
	if err := call.validate(); err != nil {
		return MethodResult{}, err
	}
	if _, err := s.Device(ctx, call.DeviceID); err != nil {
		return MethodResult{}, err
	}
	if call.ModuleID != "" {
		if _, err := s.Module(ctx, call.DeviceID, call.ModuleID); err != nil {
			return MethodResult{}, err
		}
	}
	mctx, cancel := context.WithTimeout(ctx, call.ResponseTimeout)
	defer cancel()
	status, answer, err := s.bus.InvokeMethod(mctx, call.DeviceID, call.ModuleID, call.Name, call.Payload)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return MethodResult{}, ctx.Err() // the caller went away
	case errors.Is(mctx.Err(), context.DeadlineExceeded):
		return MethodResult{}, fault.New(fault.Timeout, "%s did not answer method %q within %s s", target(call), call.Name, seconds(call.ResponseTimeout))
	case fault.Is(err, fault.NotFound), fault.Is(err, fault.Unavailable):
		return MethodResult{}, fault.NewReason(fault.NotFound, ReasonDeviceNotOnline, "%s is not online.", target(call))
	default:
		return MethodResult{}, err
	}
	if len(answer) == 0 {
		answer = json.RawMessage("null")
	} else if !json.Valid(answer) {
		// Devices must answer JSON; keep what one sent, as a string.
		answer, _ = json.Marshal(string(answer))
	}
	return MethodResult{Status: status, Payload: answer}, nil
}

func target(c MethodCall) string {
	if c.ModuleID != "" {
		return "Module '" + c.ModuleID + "' of device '" + c.DeviceID + "'"
	}
	return "Device '" + c.DeviceID + "'"
}
