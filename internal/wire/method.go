package wire

import (
	"encoding/json"
	"time"

	"github.com/usher-iot/usher/internal/hub"
)

// CloudToDeviceMethod is the body of POST /twins/{id}[/modules/{mid}]/methods
// (hub-protocol.md §3.1).
type CloudToDeviceMethod struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
}

// ToMethodCall reads a direct method request for a device (moduleID "")
// or module; absent timeouts are 0 (the hub's defaults).
func (m CloudToDeviceMethod) ToMethodCall(deviceID, moduleID string) hub.MethodCall {
	c := hub.MethodCall{DeviceID: deviceID, ModuleID: moduleID, Name: m.MethodName, Payload: m.Payload}
	if m.ResponseTimeoutInSeconds != nil {
		c.ResponseTimeout = time.Duration(*m.ResponseTimeoutInSeconds) * time.Second
	}
	if m.ConnectTimeoutInSeconds != nil {
		c.ConnectTimeout = time.Duration(*m.ConnectTimeoutInSeconds) * time.Second
	}
	return c
}

// CloudToDeviceMethodResult is the device's answer: {"status","payload"}.
type CloudToDeviceMethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// FromMethodResult renders a device's answer.
func FromMethodResult(r hub.MethodResult) CloudToDeviceMethodResult {
	return CloudToDeviceMethodResult{Status: r.Status, Payload: r.Payload}
}
