package httpapi

import (
	"net/url"
	"strings"
)

// Routes lists every endpoint as "METHOD /pattern" ("GET /enrollments/*"),
// for tests that must cover each one.
func (a *API) Routes() []string {
	out := make([]string, len(a.routes))
	for i, rt := range a.routes {
		out[i] = rt.method + " /" + strings.Join(rt.pattern, "/")
	}
	return out
}

// RouteOf names the endpoint a request for method and path (escaped, no
// query) reaches, as Routes does, or "" when none does.
func (a *API) RouteOf(method, path string) string {
	segs, err := segments(&url.URL{RawPath: path, Path: mustUnescape(path)})
	if err != nil {
		return ""
	}
	rt, _, err := a.match(method, segs)
	if err != nil {
		return ""
	}
	return rt.method + " /" + strings.Join(rt.pattern, "/")
}

func mustUnescape(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}
