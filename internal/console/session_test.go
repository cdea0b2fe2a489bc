package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/console"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

func TestSignIn(t *testing.T) {
	tc := newTestConsole(t)
	hubOwner, err := tc.db.Policy(context.Background(), access.Hub, access.HubOwner)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(name, key string) string {
		return sas.ConnectionString{HostName: "usher.test", SharedAccessKeyName: name, SharedAccessKey: key}.String()
	}
	wrongKey := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	tests := []struct {
		name   string
		form   url.Values
		status int
	}{
		{"303/policy and primary key", url.Values{"policy": {tc.owner.Name}, "key": {tc.owner.PrimaryKey}}, http.StatusSeeOther},
		{"303/policy and secondary key", url.Values{"policy": {tc.owner.Name}, "key": {tc.owner.SecondaryKey}}, http.StatusSeeOther},
		{"303/service connection string", url.Values{"connectionString": {conn(tc.owner.Name, tc.owner.PrimaryKey)}}, http.StatusSeeOther},
		{"303/empty pair with a connection string", url.Values{"policy": {""}, "key": {""}, "connectionString": {conn(tc.owner.Name, tc.owner.SecondaryKey)}}, http.StatusSeeOther},
		{"401/wrong key", url.Values{"policy": {tc.owner.Name}, "key": {wrongKey}}, http.StatusUnauthorized},
		{"401/unknown policy", url.Values{"policy": {"nobody"}, "key": {tc.owner.PrimaryKey}}, http.StatusUnauthorized},
		{"401/hub policy", url.Values{"policy": {hubOwner.Name}, "key": {hubOwner.PrimaryKey}}, http.StatusUnauthorized},
		{"401/connection string with a wrong key", url.Values{"connectionString": {conn(tc.owner.Name, wrongKey)}}, http.StatusUnauthorized},
		{"400/malformed connection string", url.Values{"connectionString": {"HostName=usher.test;SharedAccessKeyName"}}, http.StatusBadRequest},
		{"400/device connection string", url.Values{"connectionString": {"HostName=usher.test;DeviceId=d1;SharedAccessKey=" + wrongKey}}, http.StatusBadRequest},
		{"400/nothing", url.Values{}, http.StatusBadRequest},
		{"400/policy without key", url.Values{"policy": {tc.owner.Name}}, http.StatusBadRequest},
		{"400/pair and connection string", url.Values{"policy": {tc.owner.Name}, "key": {tc.owner.PrimaryKey}, "connectionString": {conn(tc.owner.Name, tc.owner.PrimaryKey)}}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tc.browser(t)
			r := b.post("/console/signin", tt.form)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d\n%s", r.status, tt.status, r.body)
			}
			if tt.status == http.StatusSeeOther {
				if loc := r.header.Get("Location"); loc != "/console/" {
					t.Errorf("Location = %q, want /console/", loc)
				}
				if r := b.get("/console/"); r.status != http.StatusOK || text(r.body, "id-scope") != tc.idScope {
					t.Errorf("the overview after signing in: %d, #id-scope %q", r.status, text(r.body, "id-scope"))
				}
				return
			}
			if msg := text(r.body, "signin-error"); msg == "" || strings.Contains(msg, "{") {
				t.Errorf("#signin-error = %q, want a sentence", msg)
			}
			if !has(r.body, "form#signin") {
				t.Errorf("the answer has no form#signin")
			}
			for _, c := range r.cookies {
				if c.Name == "usher_session" && c.MaxAge >= 0 {
					t.Errorf("a refused sign-in set a session cookie")
				}
			}
			if strings.Contains(r.body, tc.owner.PrimaryKey) || strings.Contains(r.body, wrongKey) {
				t.Errorf("the sign-in page echoes a key")
			}
			if got := b.get("/console/"); got.status != http.StatusSeeOther {
				t.Errorf("GET /console/ after a refused sign-in: %d, want 303", got.status)
			}
		})
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	tc := newTestConsole(t)
	b := tc.browser(t)
	r := b.post("/console/signin", url.Values{"policy": {tc.owner.Name}, "key": {tc.owner.PrimaryKey}})
	var c *http.Cookie
	for _, ck := range r.cookies {
		if ck.Name == "usher_session" {
			c = ck
		}
	}
	if c == nil {
		t.Fatalf("no usher_session cookie in %v", r.header["Set-Cookie"])
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/console" {
		t.Errorf("cookie %q: HttpOnly=%v Secure=%v SameSite=%v Path=%q; want HttpOnly, Secure, SameSite=Strict, Path=/console",
			r.header.Get("Set-Cookie"), c.HttpOnly, c.Secure, c.SameSite, c.Path)
	}
	if c.MaxAge != int((8 * time.Hour).Seconds()) {
		t.Errorf("Max-Age = %d, want 8 hours", c.MaxAge)
	}
	if strings.Contains(c.Value, tc.owner.PrimaryKey) {
		t.Errorf("the cookie carries the key")
	}

	b.get("/console/") // the page with the sign-out form
	out := b.submit("/console/signout", nil)
	if out.status != http.StatusSeeOther || out.header.Get("Location") != "/console/signin" {
		t.Fatalf("sign-out: %d %s", out.status, out.header.Get("Location"))
	}
	if len(out.cookies) != 1 || out.cookies[0].MaxAge >= 0 {
		t.Errorf("sign-out does not delete the cookie: %v", out.header["Set-Cookie"])
	}
	if r := b.get("/console/"); r.status != http.StatusSeeOther {
		t.Errorf("after sign-out GET /console/ = %d, want 303 to the sign-in page", r.status)
	}
}

func TestSessionEnds(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, tc *testConsole, p access.Policy, b *browser)
		status int
	}{
		{"200/unchanged", func(*testing.T, *testConsole, access.Policy, *browser) {}, http.StatusOK},
		{"200/the other key renewed", func(t *testing.T, tc *testConsole, p access.Policy, _ *browser) {
			p.SecondaryKey = sasKey(t)
			if err := tc.db.UpdatePolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
		}, http.StatusOK},
		{"200/keys swapped", func(t *testing.T, tc *testConsole, p access.Policy, _ *browser) {
			p.PrimaryKey, p.SecondaryKey = p.SecondaryKey, p.PrimaryKey
			if err := tc.db.UpdatePolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
		}, http.StatusOK},
		{"303/policy deleted", func(t *testing.T, tc *testConsole, p access.Policy, _ *browser) {
			if err := tc.db.DeletePolicy(ctx, access.DPS, p.Name); err != nil {
				t.Fatal(err)
			}
		}, http.StatusSeeOther},
		{"303/signing key renewed", func(t *testing.T, tc *testConsole, p access.Policy, _ *browser) {
			p.PrimaryKey = sasKey(t)
			if err := tc.db.UpdatePolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
		}, http.StatusSeeOther},
		{"303/after 8 hours", func(_ *testing.T, tc *testConsole, _ access.Policy, _ *browser) {
			tc.advance(8*time.Hour + time.Second)
		}, http.StatusSeeOther},
		{"303/tampered cookie", func(t *testing.T, tc *testConsole, _ access.Policy, b *browser) {
			u := mustURL(t, tc.srv.URL+"/console/")
			cs := b.c.Jar.Cookies(u)
			if len(cs) != 1 {
				t.Fatalf("cookies: %v", cs)
			}
			payload, sig, _ := strings.Cut(cs[0].Value, ".")
			first := "N"
			if payload[0] == 'N' {
				first = "O"
			}
			forged := first + payload[1:] + "." + sig
			b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "usher_session", Value: forged, Path: "/console"}})
		}, http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestConsole(t)
			p := tc.policy(t, "operator", access.AllRights(access.DPS))
			b := tc.signedIn(t, p)
			tt.change(t, tc, p, b)
			r := b.get("/console/enrollments")
			if r.status != tt.status {
				t.Fatalf("GET /console/enrollments = %d, want %d", r.status, tt.status)
			}
			if tt.status == http.StatusSeeOther && r.header.Get("Location") != "/console/signin" {
				t.Errorf("Location = %q, want /console/signin", r.header.Get("Location"))
			}
		})
	}
}

func TestSessionSurvivesRestart(t *testing.T) {
	tc := newTestConsole(t)
	b := tc.signedIn(t, tc.owner)
	// A second console over the same store, as after a restart. The
	// cookie jar ignores ports, so the browser sends its cookie there.
	b.tc = startConsole(t, tc.db, t.TempDir(), consoleOptions{})
	if r := b.get("/console/"); r.status != http.StatusOK {
		t.Fatalf("GET /console/ with the session of the previous start: %d, want 200", r.status)
	}
	s1, err := console.LoadSecret(context.Background(), tc.db)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := console.LoadSecret(context.Background(), tc.db)
	if err != nil {
		t.Fatal(err)
	}
	if string(s1) != string(s2) || len(s1) < console.MinSecretBytes {
		t.Errorf("LoadSecret returned %d then %d bytes, different: %v", len(s1), len(s2), string(s1) != string(s2))
	}
}

func TestCSRF(t *testing.T) {
	tc := newTestConsole(t)
	other := tc.signedIn(t, tc.owner)
	tests := []struct {
		name    string
		form    func(b *browser) url.Values
		headers []string
		status  int
	}{
		{"403/no token", func(*browser) url.Values { return url.Values{} }, nil, http.StatusForbidden},
		{"403/empty token", func(*browser) url.Values { return url.Values{"csrf": {""}} }, nil, http.StatusForbidden},
		{"403/another session's token", func(*browser) url.Values { return url.Values{"csrf": {other.csrf}} }, nil, http.StatusForbidden},
		{"403/cross-site request with a valid token", func(b *browser) url.Values { return url.Values{"csrf": {b.csrf}} },
			[]string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, http.StatusForbidden},
		{"303/valid token", func(b *browser) url.Values { return url.Values{"csrf": {b.csrf}} }, nil, http.StatusSeeOther},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tc.signedIn(t, tc.owner)
			id := "csrf-" + string(rune('a'+i))
			form := with(enrollmentForm(id))
			for k, v := range tt.form(b) {
				form[k] = v
			}
			r := b.post("/console/enrollments/new", form, tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d\n%s", r.status, tt.status, r.body)
			}
			_, err := tc.dps.Enrollment(context.Background(), id)
			if saved := err == nil; saved != (tt.status == http.StatusSeeOther) {
				t.Errorf("enrollment saved = %v after a %d", saved, r.status)
			}
			if tt.status == http.StatusForbidden && text(r.body, "error-message") == "" {
				t.Errorf("the 403 page has no #error-message")
			}
		})
	}
	t.Run("403/sign-out without a token", func(t *testing.T) {
		b := tc.signedIn(t, tc.owner)
		if r := b.post("/console/signout", nil); r.status != http.StatusForbidden {
			t.Errorf("status = %d, want 403", r.status)
		}
		if r := b.get("/console/"); r.status != http.StatusOK {
			t.Errorf("the session ended anyway: %d", r.status)
		}
	})
	t.Run("403/cross-site sign-in", func(t *testing.T) {
		b := tc.browser(t)
		r := b.post("/console/signin", url.Values{"policy": {tc.owner.Name}, "key": {tc.owner.PrimaryKey}}, "Sec-Fetch-Site", "cross-site")
		if r.status != http.StatusForbidden || len(r.cookies) != 0 {
			t.Errorf("status = %d with cookies %v, want 403 without", r.status, r.header["Set-Cookie"])
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	tc := newTestConsole(t)
	b := tc.signedIn(t, tc.owner)
	for _, path := range []string{"/console/signin", "/console/", "/console/enrollments", "/console/no-such-page", "/console/enrollments/nope"} {
		r := b.get(path)
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: Content-Security-Policy = %q", path, csp)
		}
		for h, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", path, h, got, want)
			}
		}
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, " onclick=") || strings.Contains(r.body, " style=") {
			t.Errorf("%s has inline script or style, which the CSP forbids", path)
		}
	}
}

func TestNewRefusesAShortSecret(t *testing.T) {
	tc := newTestConsole(t)
	_, err := console.New(console.Options{DPS: tc.dps, Hub: tc.hub, Policies: tc.db, Secret: make([]byte, 16)})
	if err == nil {
		t.Fatal("New accepted a 16-byte secret")
	}
	if _, err := console.New(console.Options{Secret: make([]byte, 32)}); err == nil {
		t.Fatal("New accepted missing services")
	}
}

func sasKey(t testing.TB) string {
	t.Helper()
	k, err := sas.NewKey(32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// notFound reports whether the domain no longer has an enrollment.
func notFound(t testing.TB, s *dps.Service, id string) bool {
	t.Helper()
	_, err := s.Enrollment(context.Background(), id)
	if err != nil && !fault.Is(err, fault.NotFound) {
		t.Fatal(err)
	}
	return err != nil
}
