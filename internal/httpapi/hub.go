package httpapi

import (
	"net/http"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/wire"
)

// hubRoutes are the built-in hub's service API (hub-protocol.md §2, §3);
// the identity registry and twins grow in the hub issue.
func (a *API) hubRoutes() []route {
	return []route{
		{http.MethodGet, []string{"devices", "*"}, hubPolicy, access.RegistryRead, getDevice},
		{http.MethodGet, []string{"twins", "*"}, hubPolicy, access.RegistryRead, getTwin},
	}
}

func getDevice(c *call) error {
	d, err := c.api.hub.Device(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	c.w.Header().Set("ETag", `"`+d.ETag+`"`)
	writeJSON(c.w, http.StatusOK, wire.FromDevice(d))
	return nil
}

func getTwin(c *call) error {
	t, d, err := c.api.hub.Twin(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	c.w.Header().Set("ETag", `"`+t.ETag+`"`)
	writeJSON(c.w, http.StatusOK, wire.FromTwin(t, d))
	return nil
}
