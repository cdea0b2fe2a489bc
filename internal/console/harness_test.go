package console_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/console"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// testConsole is the console on a real TLS socket over a real SQLite
// store, with a clock the test can move.
type testConsole struct {
	srv     *httptest.Server
	db      *sqlite.DB
	dps     *dps.Service
	hub     *hub.Service
	owner   access.Policy
	idScope string
	caPEM   string
	offset  atomic.Int64 // added to the wall clock, in nanoseconds
}

const fakeCA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

// consoleOptions adjust the console a test starts.
type consoleOptions struct {
	noCA bool // serve as with an operator's own certificate
}

func newTestConsole(t testing.TB, opts ...consoleOptions) *testConsole {
	t.Helper()
	var o consoleOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return startConsole(t, db, dir, o)
}

// startConsole serves a console over db, as one start of serve does.
func startConsole(t testing.TB, db *sqlite.DB, dir string, o consoleOptions) *testConsole {
	t.Helper()
	tc := &testConsole{db: db, caPEM: fakeCA}
	tc.srv = httptest.NewUnstartedServer(tc.handler(t, dir, o))
	tc.srv.StartTLS()
	t.Cleanup(tc.srv.Close)
	return tc
}

// handler builds a console over the test's store, as serve does.
func (tc *testConsole) handler(t testing.TB, dir string, o consoleOptions) http.Handler {
	t.Helper()
	ctx := context.Background()
	var err error
	if tc.idScope, err = instance.Bootstrap(ctx, tc.db, tc.db); err != nil {
		t.Fatal(err)
	}
	if tc.owner, err = tc.db.Policy(ctx, access.DPS, access.DPSOwner); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, []byte(fakeCA), 0o600); err != nil {
		t.Fatal(err)
	}
	if o.noCA {
		caFile = ""
	}
	secret, err := console.LoadSecret(ctx, tc.db)
	if err != nil {
		t.Fatal(err)
	}
	tc.dps = dps.NewService(tc.db, dps.Options{})
	tc.hub = hub.NewService(tc.db, hub.Options{HostName: "hub.usher.test"})
	h, err := console.New(console.Options{
		DPS: tc.dps, Hub: tc.hub, Policies: tc.db, IDScope: tc.idScope, Secret: secret, Now: tc.now,
		Endpoints: instance.Endpoints{HostNames: []string{"usher.test"}, HubHost: "hub.usher.test",
			HTTPSAddr: "127.0.0.1:8443", MQTTAddr: "127.0.0.1:8883", CAFile: caFile},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (tc *testConsole) now() time.Time { return time.Now().Add(time.Duration(tc.offset.Load())) }

// advance moves the console's clock forward.
func (tc *testConsole) advance(d time.Duration) { tc.offset.Add(int64(d)) }

// policy creates a DPS policy with rights.
func (tc *testConsole) policy(t testing.TB, name string, rights access.Rights) access.Policy {
	t.Helper()
	p, err := access.NewPolicy(access.DPS, name, rights)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.db.CreatePolicy(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// browser is one browser: its own cookies, redirects not followed.
type browser struct {
	t    testing.TB
	tc   *testConsole
	c    *http.Client
	csrf string // the token of the last signed-in page
}

func (tc *testConsole) browser(t testing.TB) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *tc.srv.Client() // the server's client is shared; each browser has its own jar
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, tc: tc, c: &c}
}

// signedIn returns a browser signed in with p's primary key.
func (tc *testConsole) signedIn(t testing.TB, p access.Policy) *browser {
	t.Helper()
	b := tc.browser(t)
	r := b.post("/console/signin", url.Values{"policy": {p.Name}, "key": {p.PrimaryKey}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/" {
		t.Fatalf("sign-in as %s: %d %s\n%s", p.Name, r.status, r.header.Get("Location"), r.body)
	}
	b.get("/console/") // picks up the CSRF token
	if b.csrf == "" {
		t.Fatal("the overview has no CSRF token")
	}
	return b
}

// answer is a response with its body read.
type answer struct {
	status  int
	header  http.Header
	cookies []*http.Cookie
	body    string
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) answer {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, cookies: resp.Cookies(), body: string(body)}
	if m := csrfInput.FindStringSubmatch(a.body); m != nil {
		b.csrf = html.UnescapeString(m[1])
	}
	return a
}

func (b *browser) get(path string) answer {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.tc.srv.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form as it is; submit adds the CSRF token first.
func (b *browser) post(path string, form url.Values, headers ...string) answer {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.tc.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

func (b *browser) submit(path string, form url.Values) answer {
	b.t.Helper()
	f := url.Values{"csrf": {b.csrf}}
	for k, v := range form {
		f[k] = v
	}
	return b.post(path, f)
}

// element is an HTML start tag found by its id.
type element struct {
	tag   string
	attrs map[string]string
}

var (
	startTag = regexp.MustCompile(`<([a-z]+)((?:\s+[a-zA-Z-]+(?:="[^"]*")?)*)\s*/?>`)
	attrRe   = regexp.MustCompile(`([a-zA-Z-]+)(?:="([^"]*)")?`)
)

// elements returns the start tags of body whose attribute name has value.
func elements(body, name, value string) []element {
	var out []element
	for _, m := range startTag.FindAllStringSubmatch(body, -1) {
		attrs := map[string]string{}
		for _, a := range attrRe.FindAllStringSubmatch(m[2], -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if v, ok := attrs[name]; ok && v == value {
			out = append(out, element{tag: m[1], attrs: attrs})
		}
	}
	return out
}

// has reports whether body has an element matching a selector of the form
// tag#id[attr=value][attr]…, or tag.class, as the browser test writes them.
func has(body, selector string) bool {
	m := regexp.MustCompile(`^([a-z]*)(?:([#.])([a-zA-Z0-9_-]+))?((?:\[[^\]]+\])*)$`).FindStringSubmatch(selector)
	if m == nil {
		panic("unsupported selector " + selector)
	}
	key := "id"
	if m[2] == "." {
		key = "class"
	}
	var conds [][]string
	for _, c := range regexp.MustCompile(`\[([a-zA-Z-]+)(?:=([^\]]*))?\]`).FindAllStringSubmatch(m[4], -1) {
		conds = append(conds, []string{c[1], strings.Trim(c[2], `"`), c[0]})
	}
	var found []element
	switch {
	case m[2] == "":
		found = allElements(body)
	case key == "class":
		for _, e := range allElements(body) {
			if e.tag == m[1] && strings.Contains(" "+e.attrs["class"]+" ", " "+m[3]+" ") {
				found = append(found, e)
			}
		}
	default:
		found = elements(body, "id", m[3])
	}
next:
	for _, e := range found {
		if m[1] != "" && e.tag != m[1] {
			continue
		}
		for _, c := range conds {
			v, ok := e.attrs[c[0]]
			if !ok || (strings.Contains(c[2], "=") && v != c[1]) {
				continue next
			}
		}
		return true
	}
	return false
}

func allElements(body string) []element {
	var out []element
	for _, m := range startTag.FindAllStringSubmatch(body, -1) {
		attrs := map[string]string{}
		for _, a := range attrRe.FindAllStringSubmatch(m[2], -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		out = append(out, element{tag: m[1], attrs: attrs})
	}
	return out
}

// text returns the text of the first element with id, tags removed.
func text(body, id string) string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	start := strings.IndexByte(body[i:], '>')
	if start < 0 {
		return ""
	}
	rest := body[i+start+1:]
	end := strings.Index(rest, "</")
	if end < 0 {
		return ""
	}
	return strings.TrimSpace(html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(rest[:end], "")))
}

// mustEnrollment creates an individual enrollment through the domain.
func (tc *testConsole) mustEnrollment(t testing.TB, id string) dps.Enrollment {
	t.Helper()
	e, err := tc.dps.CreateEnrollment(context.Background(), dps.Enrollment{RegistrationID: id,
		Settings: dps.Settings{Attestation: dps.Attestation{Type: dps.SymmetricKey}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// mustGroup creates an enrollment group through the domain.
func (tc *testConsole) mustGroup(t testing.TB, id string) dps.Group {
	t.Helper()
	g, err := tc.dps.CreateGroup(context.Background(), dps.Group{ID: id,
		Settings: dps.Settings{Attestation: dps.Attestation{Type: dps.SymmetricKey}}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// enrollmentCount is how many individual enrollments the store has.
func (tc *testConsole) enrollmentCount(t testing.TB) int {
	t.Helper()
	list, _, err := tc.dps.QueryEnrollments(context.Background(), "", dps.Page{Size: dps.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// enrollmentForm is a valid "Add individual enrollment" form.
func enrollmentForm(id string) url.Values {
	return url.Values{
		"mechanism": {"symmetricKey"}, "registrationId": {id}, "deviceId": {""}, "iotEdge": {"false"},
		"initialTwin": {`{"tags":{},"properties":{"desired":{}}}`}, "autoGenerate": {"true"},
		"primaryKey": {""}, "secondaryKey": {""}, "provisioningStatus": {"enabled"},
	}
}

// with returns a copy of v with the given pairs set.
func with(v url.Values, pairs ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		out.Set(pairs[i], pairs[i+1])
	}
	return out
}

// without returns a copy of v without the given keys.
func without(v url.Values, keys ...string) url.Values {
	out := with(v)
	for _, k := range keys {
		out.Del(k)
	}
	return out
}
