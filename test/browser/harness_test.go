//go:build linux

package browser

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/usher-iot/usher/internal/syncbuf"
)

// chromiumPath is where Debian's chromium package puts its launcher.
const chromiumPath = "/usr/bin/chromium"

// stepTimeout bounds each step of the flow.
const stepTimeout = 60 * time.Second

// requireChromium fails the test when Chromium is missing. A developer
// without Chromium can skip it locally with USHER_SKIP_BROWSER=1; the opt-out
// is ignored when CI is set, so CI never passes without the browser test.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return
	}
	if os.Getenv("USHER_SKIP_BROWSER") == "1" && os.Getenv("CI") == "" {
		t.Skipf("%s is missing and USHER_SKIP_BROWSER=1: skipping the browser test", chromiumPath)
	}
	t.Fatalf("%s is missing: install Debian's Chromium (apt-get install chromium), "+
		"or set USHER_SKIP_BROWSER=1 to skip this test locally (ignored when CI is set)", chromiumPath)
}

// info is the part of `usher info --json` the test uses.
type info struct {
	IDScope                 string `json:"idScope"`
	HTTPSAddr               string `json:"httpsAddr"`
	HostName                string `json:"hostName"`
	ServiceConnectionString string `json:"serviceConnectionString"`
	CAFile                  string `json:"caFile"`
}

// server is a running `usher serve` and the CLI binary that drives it.
type server struct {
	t       *testing.T
	bin     string
	dataDir string
	info    info
	origin  string // https://127.0.0.1:port
	caPEM   []byte
	caSPKI  string // base64 SHA-256 of the CA's SubjectPublicKeyInfo
	http    *http.Client
}

// startServer builds ./cmd/usher, runs `usher serve` on a fresh data
// directory and reads `usher info --json`.
func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{t: t, bin: filepath.Join(t.TempDir(), "usher"), dataDir: t.TempDir()}
	build := exec.Command("go", "build", "-o", s.bin, "./cmd/usher")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/usher: %v\n%s", err, out)
	}
	cmd := exec.Command(s.bin, "serve", "--data-dir", s.dataDir, "--https-addr", "127.0.0.1:0",
		"--mqtt-addr", "127.0.0.1:0", "--hub-hostname", "hub.usher.test")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("usher serve stderr:\n%s", stderr.String())
		}
	})
	banner := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), "SharedAccessKeyName=") {
				seen = true
				banner <- true
			}
		}
		if !seen {
			banner <- false
		}
	}()
	select {
	case ok := <-banner:
		if !ok {
			t.Fatalf("usher serve exited before its banner:\n%s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("usher serve printed no banner in 30s:\n%s", stderr.String())
	}
	if err := json.Unmarshal(s.usher("info", "--json", "--data-dir", s.dataDir), &s.info); err != nil {
		t.Fatalf("usher info --json: %v", err)
	}
	s.origin = "https://" + s.info.HTTPSAddr
	s.caPEM, err = os.ReadFile(s.info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(s.caPEM)
	if block == nil {
		t.Fatalf("%s holds no PEM certificate", s.info.CAFile)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse %s: %v", s.info.CAFile, err)
	}
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	s.caSPKI = base64.StdEncoding.EncodeToString(sum[:])
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	s.http = &http.Client{
		Timeout: 10 * time.Second,
		// The server certificate names localhost; the test dials 127.0.0.1.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: s.info.HostName}},
		// The test looks at redirects itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

// usher runs the CLI and fails the test when it fails.
func (s *server) usher(args ...string) []byte {
	s.t.Helper()
	out, err := s.usherErr(args...)
	if err != nil {
		s.t.Fatalf("usher %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// usherErr runs the CLI and returns its stdout, or an error with its stderr.
func (s *server) usherErr(args ...string) ([]byte, error) {
	cmd := exec.Command(s.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// postForm posts form values to the console as a browser would, with the
// given cookies, and returns the status and the body.
func (s *server) postForm(action string, cookies []*network.Cookie, form url.Values) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, action, strings.NewReader(form.Encode()))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.origin)
	req.Header.Set("Referer", action)
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", action, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// lockedBuffer collects output one goroutine writes while another reads it.
type lockedBuffer = syncbuf.Buffer

// flow is one browser tab driven through the console, step by step.
type flow struct {
	t   *testing.T
	srv *server
	tab context.Context // the tab, without a deadline
	ctx context.Context // the current step's context, with stepTimeout

	artifacts  string // where every screenshot goes
	docs       string // where the documentation screenshots go, or ""
	shots      int
	chromeLog  *lockedBuffer
	mu         sync.Mutex
	pageErrors []string // uncaught exceptions and console errors
	foreign    []string // requests to other origins
}

// startBrowser launches Debian's Chromium headless on a fresh profile and
// opens one tab.
func startBrowser(t *testing.T, srv *server) *flow {
	t.Helper()
	f := &flow{t: t, srv: srv, chromeLog: &lockedBuffer{}}
	f.artifacts = os.Getenv("USHER_ARTIFACTS")
	if f.artifacts == "" {
		f.artifacts = "artifacts"
		old, _ := filepath.Glob(filepath.Join(f.artifacts, "*.png"))
		html, _ := filepath.Glob(filepath.Join(f.artifacts, "*.html"))
		for _, p := range append(old, html...) {
			_ = os.Remove(p)
		}
	}
	if err := os.MkdirAll(f.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("USHER_UPDATE_SCREENSHOTS") == "1" {
		f.docs = filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(f.docs, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		// Trust the server's private CA, and nothing else: Chromium accepts
		// a certificate chain with this public key in it (the flag only works
		// together with --user-data-dir). The server certificate names
		// localhost, so the name mismatch for 127.0.0.1 is accepted too.
		chromedp.Flag("ignore-certificate-errors-spki-list", srv.caSPKI),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(f.chromeLog),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	// Cleanups run in reverse: the browser exits before t.TempDir is removed.
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		if t.Failed() {
			// Without a system bus, Chromium logs D-Bus errors; leave them out.
			var lines []string
			for _, l := range strings.Split(f.chromeLog.String(), "\n") {
				if !strings.Contains(l, "dbus") {
					lines = append(lines, l)
				}
			}
			t.Logf("chromium output (D-Bus errors left out):\n%s", strings.Join(lines, "\n"))
		}
	})
	if err := chromedp.Do(tab); err != nil { // starts the browser, no deadline
		t.Fatalf("start %s: %v\n%s", chromiumPath, err, f.chromeLog.String())
	}
	f.tab = tab
	f.ctx = tab
	if err := chromedp.Listen(tab, f.onEvent); err != nil {
		t.Fatal(err)
	}
	return f
}

// onEvent records page errors and requests that leave the server's origin.
// It runs on the tab's reader goroutine, so it only appends under the lock.
func (f *flow) onEvent(ev any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		f.pageErrors = append(f.pageErrors, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *cdplog.EventEntryAdded:
		// HTTP error statuses (source "network") are the steps' own business,
		// such as the 401 of a sign-in with a wrong key.
		if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
			f.pageErrors = append(f.pageErrors, fmt.Sprintf("console error (%s) %s: %s", ev.Entry.Source, ev.Entry.URL, ev.Entry.Text))
		}
	case *network.EventRequestWillBeSent:
		u := ev.Request.URL
		if !strings.HasPrefix(u, f.srv.origin+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") && !strings.HasPrefix(u, "about:") {
			f.foreign = append(f.foreign, u)
		}
	}
}

// step runs one step of the flow with its own deadline, logs it, and on a
// failure saves a screenshot of the page as it was.
func (f *flow) step(name string, fn func()) {
	f.t.Helper()
	f.t.Logf("step: %s", name)
	start := time.Now()
	ctx, cancel := context.WithTimeout(f.tab, stepTimeout)
	f.ctx = ctx
	failedBefore := f.t.Failed()
	defer func() {
		cancel()
		f.ctx = f.tab
		if f.t.Failed() && !failedBefore {
			f.failureShot(name)
		}
	}()
	fn()
	f.t.Logf("step: %s: done in %s", name, time.Since(start).Round(time.Millisecond))
}

func (f *flow) failureShot(name string) {
	ctx, cancel := context.WithTimeout(f.tab, 10*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		f.t.Logf("no failure screenshot: %v", err)
		return
	}
	p := filepath.Join(f.artifacts, "failed-"+slug(name)+".png")
	if err := os.WriteFile(p, buf, 0o644); err == nil {
		f.t.Logf("failure screenshot of %s: %s", loc, p)
	}
	if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); err == nil {
		_ = os.WriteFile(strings.TrimSuffix(p, ".png")+".html", []byte(html), 0o644)
	}
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, s)
}

// do runs actions in the current step and fails the test on an error.
func (f *flow) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	f.t.Helper()
	if err := chromedp.Do(f.ctx, actions...); err != nil {
		f.t.Fatalf("%s: %v (page %s)", what, err, f.location())
	}
}

// navigate opens a console path and waits until its document has loaded.
func (f *flow) navigate(path string) {
	f.t.Helper()
	f.do("open "+path, chromedp.Navigate(f.srv.origin+path))
}

// click clicks the element (it waits for it to be visible first).
func (f *flow) click(sel string) {
	f.t.Helper()
	f.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// fill sets a field's value and fires the input and change events a user's
// typing would fire.
func (f *flow) fill(sel, value string) {
	f.t.Helper()
	f.waitFor("field "+sel, fmt.Sprintf(`!!document.querySelector(%s)`, jsStr(sel)))
	f.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.focus(); e.value = %s;
		e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true })()`,
		jsStr(sel), jsStr(value)))
}

// eval evaluates a JavaScript expression, awaiting it when it is a
// promise, and returns its JSON result.
func (f *flow) eval(expr string) []byte {
	f.t.Helper()
	v, err := chromedp.Run(f.ctx, chromedp.Evaluate[[]byte](expr, func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	if err != nil {
		f.t.Fatalf("evaluate %s: %v (page %s)", expr, err, f.location())
	}
	return v
}

// evalInto evaluates expr and decodes its result into v.
func (f *flow) evalInto(expr string, v any) {
	f.t.Helper()
	if err := json.Unmarshal(f.eval(expr), v); err != nil {
		f.t.Fatalf("decode the result of %s: %v", expr, err)
	}
}

// bool evaluates a boolean expression.
func (f *flow) bool(expr string) bool {
	f.t.Helper()
	var b bool
	f.evalInto(expr, &b)
	return b
}

// exists reports whether a selector matches an element on the page.
func (f *flow) exists(sel string) bool {
	f.t.Helper()
	return f.bool(fmt.Sprintf(`!!document.querySelector(%s)`, jsStr(sel)))
}

// count returns how many elements a selector matches.
func (f *flow) count(sel string) int {
	f.t.Helper()
	var n int
	f.evalInto(fmt.Sprintf(`document.querySelectorAll(%s).length`, jsStr(sel)), &n)
	return n
}

// text returns an element's shown value: the value of a form field, the
// rendered text of anything else, trimmed.
func (f *flow) text(sel string) string {
	f.t.Helper()
	var s string
	f.evalInto(fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return '';
		return ((e instanceof HTMLInputElement || e instanceof HTMLTextAreaElement) ? e.value : e.innerText).trim() })()`, jsStr(sel)), &s)
	return s
}

// waitFor evaluates a boolean expression until it is true. Evaluation
// errors count as false, so it survives a navigation in between.
func (f *flow) waitFor(what, expr string) {
	f.t.Helper()
	var last error
	for {
		ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-f.ctx.Done():
			f.t.Fatalf("waiting for %s: %v (last error: %v; page %s)", what, f.ctx.Err(), last, f.location())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPage waits until the page at path has loaded and shows sel.
func (f *flow) waitPage(path, sel string) {
	f.t.Helper()
	f.waitFor(fmt.Sprintf("%s with %s", path, sel), fmt.Sprintf(
		`document.readyState === 'complete' && location.pathname === %s && !!document.querySelector(%s)`, jsStr(path), jsStr(sel)))
}

func (f *flow) location() string {
	ctx, cancel := context.WithTimeout(f.tab, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return loc
}

// screenshot saves the viewport as a PNG among the artifacts and, for the
// pages the documentation shows (doc != ""), as docs/screenshots/<doc>.png
// when USHER_UPDATE_SCREENSHOTS=1.
func (f *flow) screenshot(name, doc string) {
	f.t.Helper()
	// Let fonts and layout settle, and take the caret out of the picture.
	f.eval(`document.fonts.ready.then(() => true)`)
	buf, err := chromedp.Run(f.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		f.t.Fatalf("screenshot %s: %v", name, err)
	}
	f.shots++
	p := filepath.Join(f.artifacts, fmt.Sprintf("%02d-%s.png", f.shots, name))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.t.Logf("screenshot %s", p)
	if f.docs != "" && doc != "" {
		if err := os.WriteFile(filepath.Join(f.docs, doc+".png"), buf, 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

// cookies returns the browser's cookies for the console.
func (f *flow) cookies() []*network.Cookie {
	f.t.Helper()
	res, err := chromedp.Call(f.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{f.srv.origin + "/console/"}})
	if err != nil {
		f.t.Fatalf("read cookies: %v", err)
	}
	return res.Cookies
}

// csrf reads the CSRF token from the page's first form.
func (f *flow) csrf() string {
	f.t.Helper()
	tok := f.text(`form input[name="csrf"]`)
	if tok == "" {
		f.t.Fatalf("no form with an input named csrf on %s", f.location())
	}
	return tok
}

// formSnapshot is a form's action and the fields it would submit.
type formSnapshot struct {
	Action string     `json:"action"`
	Method string     `json:"method"`
	Fields [][]string `json:"fields"`
	Names  []string   `json:"names"` // the name attribute of each id asked for
}

// snapshotForm reads what the form sel would submit, plus the name
// attributes of the elements whose ids are given.
func (f *flow) snapshotForm(sel string, ids ...string) formSnapshot {
	f.t.Helper()
	idsJSON, _ := json.Marshal(append([]string{}, ids...))
	var s formSnapshot
	f.evalInto(fmt.Sprintf(`(() => {
		const f = document.querySelector(%s);
		if (!f) return null;
		const fields = Array.from(new FormData(f).entries()).filter(([, v]) => typeof v === 'string');
		const save = f.querySelector('button[type=submit][name], input[type=submit][name]');
		if (save) fields.push([save.name, save.value]);
		return {action: f.action, method: (f.getAttribute('method') || 'get').toLowerCase(), fields,
			names: %s.map(id => { const e = document.getElementById(id); return e ? e.name : '' })};
	})()`, jsStr(sel), idsJSON), &s)
	if s.Action == "" {
		f.t.Fatalf("no form %s on %s", sel, f.location())
	}
	return s
}

// values returns the snapshot's fields with some replaced.
func (s formSnapshot) values(set map[string]string) url.Values {
	v := url.Values{}
	for _, kv := range s.Fields {
		if _, ok := set[kv[0]]; !ok {
			v.Add(kv[0], kv[1])
		}
	}
	for k, x := range set {
		v.Set(k, x)
	}
	return v
}

func jsStr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// grantClipboard lets the console's copy button use the clipboard in
// headless Chromium, and makes the page count as focused.
func (f *flow) grantClipboard() error {
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		p := cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    cdpbrowser.PermissionSettingGranted,
			Origin:     f.srv.origin,
		}
		if _, err := chromedp.CallBrowser(f.ctx, cdpbrowser.SetPermission, p); err != nil {
			return fmt.Errorf("grant %s: %w", name, err)
		}
	}
	_, err := chromedp.Call(f.ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
	return err
}

// readClipboard returns the clipboard text, or an error when the page may
// not read it.
func (f *flow) readClipboard() (string, error) {
	return chromedp.Run(f.ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, func(p *runtime.EvaluateParams) {
		p.AwaitPromise = new(true)
		p.UserGesture = new(true)
	}))
}

var errNoCookie = errors.New("no session cookie")

// sessionCookies checks the console's cookies: every one Secure and
// SameSite=Strict, and at least one (the session) HttpOnly.
func sessionCookies(cookies []*network.Cookie) error {
	if len(cookies) == 0 {
		return errNoCookie
	}
	httpOnly := 0
	for _, c := range cookies {
		if !c.Secure || c.SameSite != network.CookieSameSiteStrict {
			return fmt.Errorf("cookie %s: Secure=%v SameSite=%q, want Secure and SameSite=Strict", c.Name, c.Secure, c.SameSite)
		}
		if c.HTTPOnly {
			httpOnly++
		}
	}
	if httpOnly == 0 {
		return fmt.Errorf("%w: none of the cookies is HttpOnly", errNoCookie)
	}
	return nil
}
