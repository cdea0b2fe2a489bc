package hub

import (
	"context"

	"github.com/usher-iot/usher/internal/fault"
)

// DeviceTwin returns the twin a connected device (moduleID "") or module
// reads for itself (the device-facing twin GET, hub-protocol.md §6.3).
// Errors: fault.NotFound when the identity no longer exists.
func (s *Service) DeviceTwin(ctx context.Context, deviceID, moduleID string) (Twin, error) {
	t, err := s.store.Twin(ctx, deviceID, moduleID)
	if fault.Is(err, fault.NotFound) {
		return Twin{}, notFound(deviceID, moduleID)
	}
	return t, err
}
