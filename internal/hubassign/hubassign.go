// Package hubassign lets provisioning assign devices to the built-in IoT
// hub. The hub package never imports dps; this adapter is the only bridge
// between them.
package hubassign

import (
	"context"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/hub"
)

// Hub adapts a hub.Service to dps.Hub.
type Hub struct{ Service *hub.Service }

var _ dps.Hub = Hub{}

// HostName implements dps.Hub.
func (h Hub) HostName() string { return h.Service.HostName() }

// Assign implements dps.Hub: it creates or updates the device identity with
// the attested keys and seeds (or resets) its twin.
func (h Hub) Assign(ctx context.Context, a dps.Assignment) error {
	spec := hub.ProvisionSpec{DeviceID: a.DeviceID, PrimaryKey: a.PrimaryKey, SecondaryKey: a.SecondaryKey, IoTEdge: a.IoTEdge, ResetTwin: a.ResetTwin}
	if a.InitialTwin != nil {
		spec.Tags, spec.Desired = a.InitialTwin.Tags, a.InitialTwin.Desired
	}
	_, err := h.Service.Provision(ctx, spec)
	return err
}

// InitialTwinLimits is dps.Options.InitialTwinLimits for the built-in hub:
// the tags and desired properties a device's twin starts with are held to
// the limits the hub applies to twin writes (keys, depth, sizes).
func InitialTwinLimits(t *dps.InitialTwin) error {
	if err := hub.ValidateCollection("initialTwin.tags", t.Tags, hub.MaxTagsBytes); err != nil {
		return err
	}
	return hub.ValidateCollection("initialTwin.properties.desired", t.Desired, hub.MaxDesiredBytes)
}
