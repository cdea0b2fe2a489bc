package httpapi

import (
	"net/http"
	"strconv"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/wire"
)

// configurationRoutes are the hub's configuration and IoT Edge deployment
// endpoints (hub-protocol.md §5.1, §5.7).
func (a *API) configurationRoutes() []route {
	return []route{
		{http.MethodPost, []string{"configurations", "testqueries"}, hubPolicy, access.RegistryRead, testConfigurationQueries},
		{http.MethodGet, []string{"configurations"}, hubPolicy, access.RegistryRead, listConfigurations},
		{http.MethodGet, []string{"configurations", "*"}, hubPolicy, access.RegistryRead, getConfiguration},
		{http.MethodPut, []string{"configurations", "*"}, hubPolicy, access.RegistryWrite, putConfiguration},
		{http.MethodDelete, []string{"configurations", "*"}, hubPolicy, access.RegistryWrite, deleteConfiguration},
		{http.MethodPost, []string{"devices", "*", "applyconfigurationcontent"}, hubPolicy, access.RegistryWrite, applyConfigurationContent},
	}
}

func getConfiguration(c *call) error {
	r, err := c.api.hub.Configuration(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	c.w.Header().Set("ETag", `"`+r.ETag+`"`)
	writeJSON(c.w, http.StatusOK, wire.FromConfiguration(r))
	return nil
}

// listConfigurations answers GET /configurations?top=N; without top (or
// with top <= 0) it lists them all.
func listConfigurations(c *call) error {
	top := 0
	if v := c.r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fault.New(fault.Invalid, "top must be an integer, not %q", v)
		}
		top = n
	}
	list, err := c.api.hub.Configurations(c.ctx(), top)
	if err != nil {
		return err
	}
	out := make([]wire.Configuration, 0, len(list))
	for _, r := range list {
		out = append(out, wire.FromConfiguration(r))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func putConfiguration(c *call) error {
	var body wire.Configuration
	if err := c.decode(&body); err != nil {
		return err
	}
	if body.ID != "" && body.ID != c.params[0] {
		return fault.New(fault.Invalid, "id %q in the body does not match %q in the path", body.ID, c.params[0])
	}
	body.ID = c.params[0]
	r, err := c.api.hub.PutConfiguration(c.ctx(), body.ToConfiguration(), c.r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	c.w.Header().Set("ETag", `"`+r.ETag+`"`)
	writeJSON(c.w, http.StatusOK, wire.FromConfiguration(r))
	return nil
}

func deleteConfiguration(c *call) error {
	if err := c.api.hub.DeleteConfiguration(c.ctx(), c.params[0], c.r.Header.Get("If-Match")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func testConfigurationQueries(c *call) error {
	var body wire.ConfigurationQueriesTestInput
	if err := c.decode(&body); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromQueryTest(c.api.hub.TestQueries(body.TargetCondition, body.CustomMetricQueries)))
	return nil
}

// applyConfigurationContent answers POST
// /devices/{id}/applyConfigurationContent with 204 (hub-protocol.md §5.7).
func applyConfigurationContent(c *call) error {
	var body wire.ConfigurationContent
	if err := c.decode(&body); err != nil {
		return err
	}
	if err := c.api.hub.ApplyConfigurationContent(c.ctx(), c.params[0], body.ToContent()); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
