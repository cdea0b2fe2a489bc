package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// Request body limits of the hub's service API.
const (
	// MaxTwinBodyBytes bounds a twin write: tags (8 KB) and desired
	// properties (32 KB) with room for the fields SDKs echo.
	MaxTwinBodyBytes = 64 << 10
	// MaxBulkBodyBytes bounds POST /devices (up to 100 devices, each with
	// an initial twin).
	MaxBulkBodyBytes = 1 << 20
	// maxMethodBodyBytes is a method payload plus its envelope.
	maxMethodBodyBytes = hub.MaxMethodPayloadBytes + 4<<10
)

// hubRoutes are the built-in hub's service API (hub-protocol.md §2–§4).
// Rights follow IoT Hub (§7.2): RegistryRead reads identities,
// RegistryWrite changes them, ServiceConnect writes twins and calls
// methods; twins and queries may be read with either RegistryRead or
// ServiceConnect. A device may manage its own module identities and read
// its own identity with a token signed by its key, as aziot-identityd does
// (§2.3).
func (a *API) hubRoutes() []route {
	const read, write, service = access.RegistryRead, access.RegistryWrite, access.ServiceConnect
	return []route{
		{http.MethodGet, []string{"devices"}, hubPolicy, read, listDevices},
		{http.MethodPost, []string{"devices"}, hubPolicy, write, bulkDevices},
		{http.MethodPost, []string{"devices", "query"}, hubPolicyAny, read | service, queryTwins},
		{http.MethodGet, []string{"devices", "*"}, hubDevice, read, getDevice},
		{http.MethodPut, []string{"devices", "*"}, hubPolicy, write, putDevice},
		{http.MethodDelete, []string{"devices", "*"}, hubPolicy, write, deleteDevice},
		{http.MethodGet, []string{"devices", "*", "modules"}, hubDevice, read, listModules},
		{http.MethodGet, []string{"devices", "*", "modules", "*"}, hubDevice, read, getModule},
		{http.MethodPut, []string{"devices", "*", "modules", "*"}, hubDevice, write, putModule},
		{http.MethodDelete, []string{"devices", "*", "modules", "*"}, hubDevice, write, deleteModule},

		{http.MethodGet, []string{"twins", "*"}, hubPolicyAny, read | service, getTwin},
		{http.MethodPatch, []string{"twins", "*"}, hubPolicy, service, patchTwin},
		{http.MethodPut, []string{"twins", "*"}, hubPolicy, service, replaceTwin},
		{http.MethodGet, []string{"twins", "*", "modules", "*"}, hubPolicyAny, read | service, getTwin},
		{http.MethodPatch, []string{"twins", "*", "modules", "*"}, hubPolicy, service, patchTwin},
		{http.MethodPut, []string{"twins", "*", "modules", "*"}, hubPolicy, service, replaceTwin},
		{http.MethodPost, []string{"twins", "*", "methods"}, hubPolicy, service, invokeMethod},
		{http.MethodPost, []string{"twins", "*", "modules", "*", "methods"}, hubPolicy, service, invokeMethod},
	}
}

// isDeviceToken reports whether an Authorization header carries a
// device-scoped token (one without skn). Anything else, garbage included,
// goes to the policy check, which says what is wrong with it.
func isDeviceToken(header string) bool {
	tok, err := sas.Parse(header)
	return err == nil && tok.KeyName == ""
}

// authenticateHubDevice accepts a token signed with the key of the device
// the path names (sr = {host}/devices/{id}, which aziot-identityd
// lower-cases). A token of another device, or of a module, is
// fault.Unauthenticated.
func (a *API) authenticateHubDevice(c *call) error {
	id, err := a.hub.AuthenticateDevice(c.ctx(), c.r.Header.Get("Authorization"), hub.DeviceIdentity{DeviceID: c.params[0]}, a.hubAuth.Skew)
	if err != nil {
		return err
	}
	c.device = &id
	return nil
}

// ifMatch returns the request's If-Match and whether it sent one: a PUT
// without it creates, with it updates.
func (c *call) ifMatch() (string, bool) {
	v := c.r.Header.Values("If-Match")
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func setETag(c *call, etag string) { c.w.Header().Set("ETag", `"`+etag+`"`) }

// sameHubID checks that an ID in the body, when present, is the one in the
// path (hub IDs are case-sensitive).
func sameHubID(field, body, path string) error {
	if body != "" && body != path {
		return fault.New(fault.Invalid, "%s %q in the body does not match %q in the path", field, body, path)
	}
	return nil
}

// moduleParam is the module ID of a /twins/{id}/modules/{mid} path, or "".
func (c *call) moduleParam() string {
	if len(c.params) > 1 {
		return c.params[1]
	}
	return ""
}

func listDevices(c *call) error {
	top := 0
	if v := c.r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fault.New(fault.Invalid, "top %q must be an integer", v)
		}
		top = n
	}
	ds, err := c.api.hub.Devices(c.ctx(), top)
	if err != nil {
		return err
	}
	out, err := c.deviceViews(ds)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func getDevice(c *call) error {
	d, err := c.api.hub.Device(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	out, err := c.deviceViews([]hub.Device{d})
	if err != nil {
		return err
	}
	setETag(c, d.ETag)
	writeJSON(c.w, http.StatusOK, out[0])
	return nil
}

// putDevice creates a device (no If-Match) or updates it. IoT Hub answers
// 200 for both.
func putDevice(c *call) error {
	var body wire.Device
	if err := c.decode(&body); err != nil {
		return err
	}
	if err := sameHubID("deviceId", body.DeviceID, c.params[0]); err != nil {
		return err
	}
	spec := body.ToDeviceSpec()
	spec.ID = c.params[0]
	var d hub.Device
	var err error
	if etag, ok := c.ifMatch(); ok {
		d, err = c.api.hub.UpdateDevice(c.ctx(), spec, etag)
	} else {
		d, err = c.api.hub.CreateDevice(c.ctx(), spec)
	}
	if err != nil {
		return err
	}
	out, err := c.deviceViews([]hub.Device{d})
	if err != nil {
		return err
	}
	setETag(c, d.ETag)
	writeJSON(c.w, http.StatusOK, out[0])
	return nil
}

func deleteDevice(c *call) error {
	etag, _ := c.ifMatch()
	if err := c.api.hub.DeleteDevice(c.ctx(), c.params[0], etag); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// bulkDevices answers 200 with isSuccessful false when items failed, so
// that every SDK (.NET throws on 400) sees which (hub-protocol.md §2.4).
func bulkDevices(c *call) error {
	b, err := c.bodyUpTo(MaxBulkBodyBytes)
	if err != nil {
		return err
	}
	var body []wire.ExportImportDevice
	if err := wire.Decode(b, &body); err != nil {
		return err
	}
	items := make([]hub.BulkItem, len(body))
	for i, e := range body {
		if items[i], err = e.ToBulkItem(); err != nil {
			return fault.New(fault.KindOf(err), "item %d (%q): %s", i, e.ID, fault.MessageOf(err))
		}
	}
	errs, err := c.api.hub.BulkDevices(c.ctx(), items)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromBulkDeviceErrors(errs))
	return nil
}

func listModules(c *call) error {
	ms, err := c.api.hub.Modules(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	out, err := c.moduleViews(ms)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func getModule(c *call) error {
	m, err := c.api.hub.Module(c.ctx(), c.params[0], c.params[1])
	if err != nil {
		return err
	}
	out, err := c.moduleViews([]hub.Module{m})
	if err != nil {
		return err
	}
	setETag(c, m.ETag)
	writeJSON(c.w, http.StatusOK, out[0])
	return nil
}

// putModule creates a module (no If-Match) or updates it, and answers 200
// either way: aziot-identityd accepts nothing else (hub-protocol.md §2).
func putModule(c *call) error {
	var body wire.Module
	if err := c.decode(&body); err != nil {
		return err
	}
	if err := sameHubID("deviceId", body.DeviceID, c.params[0]); err != nil {
		return err
	}
	if err := sameHubID("moduleId", body.ModuleID, c.params[1]); err != nil {
		return err
	}
	spec := body.ToModuleSpec()
	spec.DeviceID, spec.ID = c.params[0], c.params[1]
	var m hub.Module
	var err error
	if etag, ok := c.ifMatch(); ok {
		m, err = c.api.hub.UpdateModule(c.ctx(), spec, etag)
	} else {
		m, err = c.api.hub.CreateModule(c.ctx(), spec)
	}
	if err != nil {
		return err
	}
	out, err := c.moduleViews([]hub.Module{m})
	if err != nil {
		return err
	}
	setETag(c, m.ETag)
	writeJSON(c.w, http.StatusOK, out[0])
	return nil
}

func deleteModule(c *call) error {
	etag, _ := c.ifMatch()
	if err := c.api.hub.DeleteModule(c.ctx(), c.params[0], c.params[1], etag); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func getTwin(c *call) error {
	var t hub.Twin
	var d hub.Device
	var err error
	if mid := c.moduleParam(); mid != "" {
		t, d, err = c.api.hub.ModuleTwin(c.ctx(), c.params[0], mid)
	} else {
		t, d, err = c.api.hub.Twin(c.ctx(), c.params[0])
	}
	if err != nil {
		return err
	}
	return writeTwin(c, t, d)
}

// writeTwin renders a twin with its live connection state.
func writeTwin(c *call, t hub.Twin, d hub.Device) error {
	conn, err := c.api.hub.Connection(c.ctx(), t.DeviceID, t.ModuleID)
	if err != nil {
		return err
	}
	setETag(c, t.ETag)
	writeJSON(c.w, http.StatusOK, wire.FromTwin(t, d, conn))
	return nil
}

// deviceViews renders device identities with their live connection
// states, looked up at once.
func (c *call) deviceViews(ds []hub.Device) ([]wire.Device, error) {
	keys := make([]hub.TwinKey, len(ds))
	for i, d := range ds {
		keys[i] = hub.TwinKey{DeviceID: d.ID}
	}
	conns, err := c.api.hub.Connections(c.ctx(), keys)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Device, len(ds))
	for i, d := range ds {
		out[i] = wire.FromDevice(d, conns[keys[i]])
	}
	return out, nil
}

// moduleViews renders module identities with their live connection
// states, looked up at once.
func (c *call) moduleViews(ms []hub.Module) ([]wire.Module, error) {
	keys := make([]hub.TwinKey, len(ms))
	for i, m := range ms {
		keys[i] = hub.TwinKey{DeviceID: m.DeviceID, ModuleID: m.ID}
	}
	conns, err := c.api.hub.Connections(c.ctx(), keys)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Module, len(ms))
	for i, m := range ms {
		out[i] = wire.FromModule(m, conns[keys[i]])
	}
	return out, nil
}

// patchTwin merges tags and desired properties (PATCH /twins/...).
func patchTwin(c *call) error { return writeTwinWith(c, c.api.hub.PatchTwin) }

// replaceTwin replaces tags and desired properties (PUT /twins/...).
func replaceTwin(c *call) error { return writeTwinWith(c, c.api.hub.ReplaceTwin) }

func writeTwinWith(c *call, update func(ctx context.Context, deviceID, moduleID string, p hub.TwinPatch, ifMatch string) (hub.Twin, error)) error {
	b, err := c.bodyUpTo(MaxTwinBodyBytes)
	if err != nil {
		return err
	}
	var body wire.TwinUpdate
	if err := wire.Decode(b, &body); err != nil {
		return err
	}
	patch, err := body.ToTwinPatch()
	if err != nil {
		return err
	}
	etag, _ := c.ifMatch()
	t, err := update(c.ctx(), c.params[0], c.moduleParam(), patch, etag)
	if err != nil {
		return err
	}
	d, err := c.api.hub.Device(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	return writeTwin(c, t, d)
}

// queryTwins answers POST /devices/query one page at a time; the
// x-ms-continuation header is sent only when more pages follow
// (hub-protocol.md §4.1).
func queryTwins(c *call) error {
	q, page, err := c.querySpec()
	if err != nil {
		return err
	}
	res, err := c.api.hub.Query(c.ctx(), q, hub.QueryPage{Size: page.Size, Continuation: page.Continuation})
	if err != nil {
		return err
	}
	c.writePage(res.ItemType, res.Continuation, dps.Page{Size: page.Size}, wire.FromQueryItems(res))
	return nil
}

// invokeMethod calls a direct method and answers the device's status and
// payload; the request waits up to responseTimeoutInSeconds.
func invokeMethod(c *call) error {
	b, err := c.bodyUpTo(maxMethodBodyBytes)
	if err != nil {
		return err
	}
	var body wire.CloudToDeviceMethod
	if err := wire.Decode(b, &body); err != nil {
		return err
	}
	res, err := c.api.hub.InvokeMethod(c.ctx(), body.ToMethodCall(c.params[0], c.moduleParam()))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromMethodResult(res))
	return nil
}
