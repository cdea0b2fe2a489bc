package console

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/wire"
)

// The built-in hub's pages are read-only and need the DPS right hubRight
// (see render.go).

// devicesView lists the hub's devices.
type devicesView struct {
	Devices   []hub.Device
	Truncated bool // there may be more than the page lists
}

func (c *Console) deviceList(r *http.Request, s *session) (response, error) {
	if err := s.requireRead(hubRight); err != nil {
		return nil, err
	}
	ds, err := c.hub.Devices(r.Context(), hub.MaxListDevices)
	if err != nil {
		return nil, err
	}
	return c.view(s, "devices", "Hub devices", devicesView{Devices: ds, Truncated: len(ds) == hub.MaxListDevices}), nil
}

// deviceView is one device with its twin as IoT Hub's JSON.
type deviceView struct {
	Device  hub.Device
	Modules []hub.Module
	Twin    string
}

func (c *Console) devicePage(r *http.Request, s *session) (response, error) {
	if err := s.requireRead(hubRight); err != nil {
		return nil, err
	}
	t, d, err := c.hub.Twin(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	mods, err := c.hub.Modules(r.Context(), d.ID)
	if err != nil {
		return nil, err
	}
	conn, err := c.hub.Connection(r.Context(), d.ID, "")
	if err != nil {
		return nil, err
	}
	twin, err := prettyJSON(wire.FromTwin(t, d, conn))
	if err != nil {
		return nil, err
	}
	return c.view(s, "devices", "Device "+d.ID, deviceView{Device: d, Modules: mods, Twin: twin}), nil
}

// deploymentsView lists configurations and IoT Edge deployments.
type deploymentsView struct {
	Deployments []deploymentRow
}

type deploymentRow struct {
	hub.ConfigurationReport
	Kind          string
	SystemMetrics []metric
	Metrics       []metric
}

// metric is one named count of a configuration.
type metric struct {
	Name  string
	Count int
}

func (c *Console) deploymentList(r *http.Request, s *session) (response, error) {
	if err := s.requireRead(hubRight); err != nil {
		return nil, err
	}
	list, err := c.hub.Configurations(r.Context(), 0)
	if err != nil {
		return nil, err
	}
	var v deploymentsView
	for _, cfg := range list {
		v.Deployments = append(v.Deployments, deploymentRow{
			ConfigurationReport: cfg, Kind: kindLabel(cfg.Content.Kind()),
			SystemMetrics: metrics(cfg.SystemMetrics), Metrics: metrics(cfg.Metrics),
		})
	}
	return c.view(s, "deployments", "Deployments", v), nil
}

func metrics(m hub.ConfigurationMetrics) []metric {
	var out []metric
	for name, q := range m.Queries {
		n, ok := m.Results[name]
		if !ok && q != "" {
			continue // the query failed; the hub logged why
		}
		out = append(out, metric{Name: name, Count: n})
	}
	slices.SortFunc(out, func(a, b metric) int {
		return cmp.Or(cmp.Compare(metricOrder(a.Name), metricOrder(b.Name)), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// metricOrder lists system metrics as IoT Hub's portal does; other names
// follow in alphabetical order.
func metricOrder(name string) int {
	if i := slices.Index([]string{"targetedCount", "appliedCount", "reportedSuccessfulCount", "reportedFailedCount"}, name); i >= 0 {
		return i - 10
	}
	return 0
}

func kindLabel(k hub.ConfigurationKind) string {
	switch k {
	case hub.EdgeDeployment:
		return "IoT Edge deployment"
	case hub.DeviceConfiguration:
		return "Device configuration"
	case hub.ModuleConfiguration:
		return "Module configuration"
	}
	return "No content"
}
