package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// FuzzRoute feeds arbitrary request targets to the path splitter and the
// router of every surface. Refusals are Invalid (bad percent-encoding),
// NotFound or MethodNotAllowed; a matched route has one non-empty
// parameter per wildcard, and the path rebuilt from the route and its
// parameters (each escaped) matches the same route with the same
// parameters, so an ID survives whatever escaping a client chose.
func FuzzRoute(f *testing.F) {
	for _, s := range [][2]string{
		// dps-https-register.md, c-sdk-dps-https-register.md
		{http.MethodPut, "/0ne00STUB01/registrations/cap-http-dev-01/register?api-version=2019-03-31"},
		{http.MethodGet, "/0ne00STUB01/registrations/cap-c-http-01/operations/4.298717ab6f32d04c.8bb8e1df-9e47-4084-8143-49bfdcf076cb?api-version=2021-06-01"},
		{http.MethodPost, "/0ne00STUB01/registrations/cap%3Adev.07"},
		// dps-service-enrollments.md, hub-service-registry.md
		{http.MethodPut, "/enrollments/cap-svc-dev-01?api-version=2021-10-01"},
		{http.MethodPost, "/enrollments/?api-version=2021-10-01"},
		{http.MethodPost, "/enrollmentGroups/query?api-version=2021-10-01"},
		{http.MethodGet, "/registrations/cap-http-dev-01?api-version=2021-10-01"},
		{http.MethodPut, "/devices/cap-hub-dev-01?api-version=2021-04-12"},
		{http.MethodPatch, "/twins/cap-hub-edge-01?api-version=2021-04-12"},
		{http.MethodPost, "/devices/query?api-version=2021-04-12"},
		{http.MethodPut, "/configurations/cap-config-1?api-version=2021-04-12"},
		{http.MethodGet, "/devices/edge-1/modules/%24edgeAgent?api-version=2021-04-12"},
		{http.MethodPost, "/twins/d/methods?api-version=2021-04-12"},
		{http.MethodDelete, "/devices/a%2Fb%2f..?api-version=2021-04-12"},
		{http.MethodGet, "//healthz/"}, {"BREW", "/enrollments/x"}, {http.MethodGet, "/%zz"}, {http.MethodGet, "/devices//modules/m"},
	} {
		f.Add(s[0], s[1])
	}
	a := New(Options{Enrollments: &dps.Service{}, Registrar: &dps.Registrar{}, Hub: &hub.Service{}})
	f.Fuzz(func(t *testing.T, method, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		segs, err := segments(u)
		if err != nil {
			if !fault.Is(err, fault.Invalid) {
				t.Fatalf("segments(%q) failed with kind %v: %v", target, fault.KindOf(err), err)
			}
			return
		}
		rt, params, err := a.match(method, segs)
		if err != nil {
			if k := fault.KindOf(err); k != fault.NotFound && k != fault.MethodNotAllowed {
				t.Fatalf("match(%s %q) failed with kind %v: %v", method, target, k, err)
			}
			return
		}
		rebuilt, i := "", 0
		for _, p := range rt.pattern {
			if p == "*" {
				if params[i] == "" {
					t.Fatalf("%s %q matched %v with an empty parameter", method, target, rt.pattern)
				}
				p = url.PathEscape(params[i])
				i++
			}
			rebuilt += "/" + p
		}
		if i != len(params) {
			t.Fatalf("%s %q matched %v with %d parameters", method, target, rt.pattern, len(params))
		}
		u2, err := url.ParseRequestURI(rebuilt)
		if err != nil {
			t.Fatalf("rebuilt path %q does not parse: %v", rebuilt, err)
		}
		segs2, err := segments(u2)
		if err != nil {
			t.Fatalf("rebuilt path %q: %v", rebuilt, err)
		}
		rt2, params2, err := a.match(method, segs2)
		if err != nil || rt2.method != rt.method || strings.Join(rt2.pattern, "/") != strings.Join(rt.pattern, "/") || strings.Join(params2, "\x00") != strings.Join(params, "\x00") {
			t.Fatalf("%s %q matched %v %q; rebuilt as %q it matches %v %q (%v)", method, target, rt.pattern, params, rebuilt, rt2.pattern, params2, err)
		}
	})
}
