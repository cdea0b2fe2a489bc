package hub_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// recordingRelay records what the bus hands it.
type recordingRelay struct{ calls []string }

func (r *recordingRelay) DesiredChanged(deviceID, _ string, _ map[string]any, _ int64) {
	r.calls = append(r.calls, "desired "+deviceID)
}
func (r *recordingRelay) Disconnect(deviceID, _ string) {
	r.calls = append(r.calls, "disconnect "+deviceID)
}
func (r *recordingRelay) InvokeMethod(_ context.Context, deviceID, _, _ string, _ json.RawMessage) (int, json.RawMessage, error) {
	r.calls = append(r.calls, "invoke "+deviceID)
	return 0, nil, fault.New(fault.NotFound, "nowhere")
}

// localConn answers every method with 201.
type localConn struct{}

func (localConn) DesiredChanged(map[string]any, int64) {}
func (localConn) Close(string)                         {}
func (localConn) InvokeMethod(context.Context, string, json.RawMessage) (int, json.RawMessage, error) {
	return 201, nil, nil
}

func TestBusRelay(t *testing.T) {
	ctx := context.Background()
	bus := hub.NewBus()
	r := &recordingRelay{}
	bus.SetRelay(r)
	defer bus.Attach("here", "", localConn{})()

	bus.DesiredChanged("d", "", nil, 1)
	bus.Disconnect("d", "gone")
	bus.LocalDesiredChanged("d", "", nil, 2) // from another node: not relayed again
	bus.LocalDisconnect("d", "gone")
	if _, _, err := bus.InvokeMethod(ctx, "elsewhere", "", "m", nil); !fault.Is(err, fault.NotFound) {
		t.Errorf("InvokeMethod via relay = %v, want the relay's fault.NotFound", err)
	}
	if status, _, err := bus.InvokeMethod(ctx, "here", "", "m", nil); err != nil || status != 201 {
		t.Errorf("InvokeMethod on a local connection = %d, %v; want 201 without the relay", status, err)
	}
	want := []string{"desired d", "disconnect d", "invoke elsewhere"}
	if diff := cmp.Diff(want, r.calls); diff != "" {
		t.Errorf("relay calls (-want +got):\n%s", diff)
	}
}
