// Package console is Usher's web console: the Azure portal's "Manage
// enrollments" flow (individual enrollments, enrollment groups, their keys
// and registration records) and a read-only view of the built-in hub's
// devices, twins and deployments, served under /console/ by `usher serve`.
//
// Pages are rendered on the server with html/template; the stylesheet and
// the one small script (reveal and copy keys, check the initial twin JSON
// before a form is sent) are embedded, so the console works offline and
// under a self-only Content-Security-Policy. An operator signs in with a DPS
// shared access policy; the policy's current rights decide which buttons a
// page has, and every handler checks them again (see
// docs/decisions/0010-web-console.md).
package console

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/instance"
)

// Prefix is the path the console is served under. Requests for Prefix
// itself or anything below Prefix+"/" belong to the console.
const Prefix = "/console"

// Options configure the console.
type Options struct {
	Logger    *slog.Logger
	DPS       *dps.Service       // enrollments, groups, registration records
	Hub       *hub.Service       // devices, twins, deployments
	Policies  access.Store       // DPS shared access policies people sign in with
	IDScope   string             // shown on the overview
	Endpoints instance.Endpoints // host names, addresses and the CA file
	// Secret signs session cookies and CSRF tokens: at least 32 bytes.
	// LoadSecret keeps one in the store so sessions survive restarts.
	Secret []byte
	Now    func() time.Time // time.Now when nil
}

// MinSecretBytes is the shortest Options.Secret New accepts.
const MinSecretBytes = 32

// Console is the console's http.Handler.
type Console struct {
	log       *slog.Logger
	dps       *dps.Service
	hub       *hub.Service
	policies  access.Store
	idScope   string
	endpoints instance.Endpoints
	secret    []byte
	now       func() time.Time
	pages     map[string]*pageTemplate
	assets    map[string]asset
	origin    *http.CrossOriginProtection
	mux       *http.ServeMux
}

// New returns the console. It fails when a service or the secret is
// missing, or when an embedded template does not parse.
func New(opts Options) (*Console, error) {
	switch {
	case opts.DPS == nil || opts.Hub == nil || opts.Policies == nil:
		return nil, errors.New("console: the DPS service, the hub service and the policy store are required")
	case len(opts.Secret) < MinSecretBytes:
		return nil, fmt.Errorf("console: the session secret must be at least %d bytes", MinSecretBytes)
	}
	c := &Console{
		log: opts.Logger, dps: opts.DPS, hub: opts.Hub, policies: opts.Policies, idScope: opts.IDScope,
		endpoints: opts.Endpoints, secret: bytes.Clone(opts.Secret), now: opts.Now,
		origin: http.NewCrossOriginProtection(),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	var err error
	if c.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	if c.pages, err = parsePages(c.assetURL); err != nil {
		return nil, err
	}
	c.mux = c.routes()
	return c, nil
}

// routes lists every page. Handlers of signed-in pages get the session;
// POST handlers run only after the CSRF token was checked.
func (c *Console) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET "+Prefix+"/static/{file}", http.HandlerFunc(c.serveAsset))
	m.Handle("GET "+Prefix+"/signin", c.public(c.signinPage))
	m.Handle("POST "+Prefix+"/signin", c.public(c.signin))
	m.Handle("POST "+Prefix+"/signout", c.signedIn(c.signout))

	m.Handle("GET "+Prefix+"/{$}", c.signedIn(c.overview))
	m.Handle("GET "+Prefix+"/ca.pem", c.signedIn(c.caFile))

	m.Handle("GET "+Prefix+"/enrollments", c.signedIn(c.enrollmentList))
	m.Handle("GET "+Prefix+"/enrollments/new", c.signedIn(c.newEnrollmentPage))
	m.Handle("POST "+Prefix+"/enrollments/new", c.signedIn(c.createEnrollment))
	m.Handle("GET "+Prefix+"/enrollments/{id}", c.signedIn(c.enrollmentPage))
	m.Handle("POST "+Prefix+"/enrollments/{id}/delete", c.signedIn(c.deleteEnrollment))
	m.Handle("POST "+Prefix+"/enrollments/{id}/registration/delete", c.signedIn(c.deleteEnrollmentRegistration))

	m.Handle("GET "+Prefix+"/groups/new", c.signedIn(c.newGroupPage))
	m.Handle("POST "+Prefix+"/groups/new", c.signedIn(c.createGroup))
	m.Handle("GET "+Prefix+"/groups/{id}", c.signedIn(c.groupPage))
	m.Handle("POST "+Prefix+"/groups/{id}/delete", c.signedIn(c.deleteGroup))
	m.Handle("POST "+Prefix+"/groups/{id}/derive", c.signedIn(c.deriveKey))
	m.Handle("POST "+Prefix+"/groups/{id}/registrations/{rid}/delete", c.signedIn(c.deleteGroupRegistration))

	m.Handle("GET "+Prefix+"/hub/devices", c.signedIn(c.deviceList))
	m.Handle("GET "+Prefix+"/hub/devices/{id}", c.signedIn(c.devicePage))
	m.Handle("GET "+Prefix+"/hub/deployments", c.signedIn(c.deploymentList))

	m.Handle(Prefix+"/", c.signedIn(func(*http.Request, *session) (response, error) {
		return nil, fault.New(fault.NotFound, "There is no console page at this address.")
	}))
	return m
}

// ServeHTTP serves the console's pages with its security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store") // pages show keys
	if r.URL.Path == Prefix {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// A response is what a handler answers when it succeeds: a page, a
// redirect or a file.
type response interface {
	write(w http.ResponseWriter) error
}

// redirect answers 303 See Other, the answer to every successful POST.
type redirect string

func (to redirect) write(w http.ResponseWriter) error {
	w.Header().Set("Location", string(to))
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// download is a file to save.
type download struct {
	name, contentType string
	body              []byte
}

func (d download) write(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", d.contentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", d.name))
	_, err := w.Write(d.body)
	return err
}

// public wraps a handler of a page anyone may open (sign-in).
func (c *Console) public(h func(*http.Request) (response, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.origin.Check(r); err != nil {
			c.fail(w, r, nil, fault.New(fault.Forbidden, "This form was sent from another site, so it was refused."))
			return
		}
		c.answer(w, r, nil, h)
	})
}

// signedIn wraps a handler that needs a session: without one the browser
// is sent to the sign-in page. A POST must carry the session's CSRF token.
func (c *Console) signedIn(h func(*http.Request, *session) (response, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		if err != nil {
			if !fault.Is(err, fault.Unauthenticated) {
				c.fail(w, r, nil, err)
				return
			}
			if _, cerr := r.Cookie(cookieName); cerr == nil {
				http.SetCookie(w, c.clearCookie())
			}
			http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
			return
		}
		// The audit log names the signed-in policy as who made a change.
		r = r.WithContext(dps.WithOrigin(r.Context(), dps.Origin{Transport: "console", Address: remoteHost(r.RemoteAddr), Actor: s.policy.Name}))
		if r.Method == http.MethodPost {
			if err := c.checkPost(w, r, s); err != nil {
				c.fail(w, r, s, err)
				return
			}
		}
		c.answer(w, r, s, func(r *http.Request) (response, error) { return h(r, s) })
	})
}

// maxFormBytes bounds a form: an initial twin (8 KB of tags, 32 KB of
// desired properties) with room for its JSON punctuation.
const maxFormBytes = 128 << 10

// checkPost reads the form and checks that it came from this console: the
// browser says it is same-origin and the CSRF token is the session's.
func (c *Console) checkPost(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.origin.Check(r); err != nil {
		return fault.New(fault.Forbidden, "This form was sent from another site, so it was refused. Nothing was changed.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fault.New(fault.TooLarge, "The form is larger than %d KB. Nothing was changed.", maxFormBytes>>10)
		}
		return fault.New(fault.Invalid, "The form could not be read. Nothing was changed.")
	}
	if !c.validCSRF(s, r.PostFormValue(csrfField)) {
		return fault.New(fault.Forbidden, "This form has expired or did not come from this console. Reload the page and try again. Nothing was changed.")
	}
	return nil
}

func (c *Console) answer(w http.ResponseWriter, r *http.Request, s *session, h func(*http.Request) (response, error)) {
	resp, err := h(r)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if err := resp.write(w); err != nil {
		c.log.Debug("console: writing the answer", "path", r.URL.Path, "err", err)
	}
}

// statusOf is the console's one table from fault kinds to HTTP statuses.
// Unlike the DPS API (which answers 401 for a missing right, as Azure does)
// a browser is told 403.
var statusOf = map[fault.Kind]int{
	fault.Invalid:              http.StatusBadRequest,
	fault.Malformed:            http.StatusBadRequest,
	fault.Unsupported:          http.StatusBadRequest,
	fault.Unauthenticated:      http.StatusUnauthorized,
	fault.Forbidden:            http.StatusForbidden,
	fault.NotFound:             http.StatusNotFound,
	fault.MethodNotAllowed:     http.StatusMethodNotAllowed,
	fault.Conflict:             http.StatusConflict,
	fault.PreconditionFailed:   http.StatusPreconditionFailed,
	fault.TooLarge:             http.StatusRequestEntityTooLarge,
	fault.UnsupportedMediaType: http.StatusUnsupportedMediaType,
	fault.Throttled:            http.StatusTooManyRequests,
	fault.Internal:             http.StatusInternalServerError,
	fault.Unavailable:          http.StatusServiceUnavailable,
	fault.Timeout:              http.StatusGatewayTimeout,
}

func status(err error) int {
	if s, ok := statusOf[fault.KindOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorView is the error page's content; its heading is the status.
type errorView struct {
	Message string
}

// fail renders err as an error page. Internal causes are logged with a
// reference the page shows, never shown themselves.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code := status(err)
	msg := fault.MessageOf(err)
	if code >= 500 {
		ref := newReference()
		c.log.Error("console request failed", "reference", ref, "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "Something went wrong on the server. The server log has the details under reference " + ref + "."
	} else {
		c.log.Debug("console request refused", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	p := c.view(s, "", http.StatusText(code), errorView{Message: msg})
	p.status = code
	if werr := p.write(w); werr != nil {
		c.log.Debug("console: writing an error page", "err", werr)
	}
}

func newReference() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return hex.EncodeToString(b[:])
}

// asset is an embedded static file with its content hash, which versions
// its URL so browsers may cache it.
type asset struct {
	body        []byte
	contentType string
	version     string
}

//go:embed assets templates
var files embed.FS

func loadAssets() (map[string]asset, error) {
	out := map[string]asset{}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[path.Base(p)] = asset{body: b, contentType: types[path.Ext(p)], version: hex.EncodeToString(sum[:6])}
		return nil
	})
	return out, err
}

// assetURL is the versioned address of an embedded file.
func (c *Console) assetURL(name string) string {
	return Prefix + "/static/" + name + "?v=" + c.assets[name].version
}

func (c *Console) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := c.assets[r.PathValue("file")]
	if !ok {
		c.fail(w, r, nil, fault.New(fault.NotFound, "There is no such file."))
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(a.body) // the browser went away
}

// hasPrefixFold reports whether s starts with prefix, ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// remoteHost returns the host part of a request's remote address.
func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
