//go:build linux

// Package browser drives the web console (issue 5) in Debian's Chromium,
// headless, against a real `usher serve`: the portal's "Manage enrollments"
// flow from the seed, a group's derived key checked against the CLI and used
// by the project's own device client, the hub pages, and a read-only policy
// that sees no Add/Delete buttons and gets 403 when it posts anyway. Each page
// is saved as a PNG screenshot (see README.md in this directory).
package browser

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/usher-iot/usher/internal/sas"
)

// base64Key matches a standard base64 string; the length is checked apart.
var base64Key = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,2}$`)

// keyBytes returns the length of a base64 key, or -1 when it is not one.
func keyBytes(s string) int {
	if !base64Key.MatchString(s) {
		return -1
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return -1
	}
	return len(b)
}

// symmetricKeys is the part of an enrollment or a group the CLI prints.
type symmetricKeys struct {
	Attestation struct {
		SymmetricKey struct {
			PrimaryKey   string `json:"primaryKey"`
			SecondaryKey string `json:"secondaryKey"`
		} `json:"symmetricKey"`
	} `json:"attestation"`
	Capabilities struct {
		IoTEdge bool `json:"iotEdge"`
	} `json:"capabilities"`
	InitialTwin struct {
		Tags map[string]any `json:"tags"`
	} `json:"initialTwin"`
}

const (
	individualID = "console-dev-1"
	badID        = "console-bad"
	groupID      = "console-group"
	memberID     = "console-member-7"
	initialTwin  = `{"tags":{"environment":"test"},"properties":{"desired":{}}}`
)

func TestConsole(t *testing.T) {
	requireChromium(t)
	start := time.Now()
	srv := startServer(t)
	owner, err := sas.ParseConnectionString(srv.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	f := startBrowser(t, srv)
	t.Logf("server %s and %s up in %s", srv.origin, chromiumPath, time.Since(start).Round(time.Millisecond))
	dd := []string{"--data-dir", srv.dataDir}
	var (
		individualKey string
		groupKey      string
		derivedKey    string
		ownerForm     formSnapshot // the add-individual form, as the owner got it
		deleteForm    formSnapshot // the delete form of console-dev-1
	)

	f.step("1. sign in as the owner policy", func() {
		f.do("viewport 1280x800", chromedp.EmulateViewport(1280, 800))
		f.navigate("/console/")
		f.waitFor("the sign-in form", `document.readyState === 'complete' && !!document.querySelector('form#signin')`)
		if loc := f.location(); strings.TrimPrefix(loc, srv.origin) == "/console/" {
			t.Errorf("/console/ without a session shows the sign-in form without redirecting to it (%s)", loc)
		}
		for _, sel := range []string{"input#policy", "input#key", "input#connection-string", "button#signin-submit"} {
			if !f.exists(sel) {
				t.Errorf("sign-in page: no %s", sel)
			}
		}
		f.checkLabels("form#signin")
		f.screenshot("signin", "signin")

		// A wrong key is refused with a message, and no session.
		f.fill("#policy", owner.SharedAccessKeyName)
		f.fill("#key", base64.StdEncoding.EncodeToString(make([]byte, 32)))
		f.click("#signin-submit")
		f.waitFor("#signin-error after a wrong key", `document.readyState === 'complete' && !!document.querySelector('#signin-error') && document.querySelector('#signin-error').innerText.trim() !== ''`)
		t.Logf("wrong key: %q", f.text("#signin-error"))

		f.fill("#policy", owner.SharedAccessKeyName)
		f.fill("#key", owner.SharedAccessKey)
		f.click("#signin-submit")
		f.waitFor("the overview with #id-scope", `document.readyState === 'complete' && !!document.querySelector('#id-scope')`)
		if got := f.text("#id-scope"); got != srv.info.IDScope {
			t.Errorf("#id-scope = %q, want usher info's idScope %q", got, srv.info.IDScope)
		}
		if err := sessionCookies(f.cookies()); err != nil {
			t.Errorf("session cookie: %v", err)
		}
		for _, sel := range []string{"a#download-ca", "a#nav-overview", "a#nav-enrollments", "a#nav-hub-devices", "a#nav-deployments", "form#signout", "button#signout-submit"} {
			if !f.exists(sel) {
				t.Errorf("overview: no %s", sel)
			}
		}
		// The CA download is the data directory's CA.
		if f.exists("a#download-ca") {
			var ca string
			f.evalInto(`fetch(document.querySelector('a#download-ca').href).then(r => r.text())`, &ca)
			if strings.TrimSpace(ca) != strings.TrimSpace(string(srv.caPEM)) {
				t.Errorf("a#download-ca serves %.80q…, not the CA file %s", ca, srv.info.CAFile)
			}
		}
		f.screenshot("overview", "overview")
	})

	f.step("2. add an individual enrollment (IoT Edge, tag environment=test), reveal and copy its key", func() {
		f.click("a#nav-enrollments")
		f.waitPage("/console/enrollments", "table#enrollments")
		for _, sel := range []string{"a#tab-individual", "a#tab-groups", "form#filter", "input#filter", "a#add-individual", "a#add-group"} {
			if !f.exists(sel) {
				t.Errorf("enrollments page: no %s", sel)
			}
		}
		f.screenshot("enrollments-empty", "")
		f.click("a#add-individual")
		f.waitPage("/console/enrollments/new", "form#enrollment-form")
		for _, sel := range []string{"select#mechanism", "input#device-id", "input#iot-edge-false", "input#auto-generate", "input#primary-key", "input#secondary-key", "select#provisioning-status", "button#save"} {
			if !f.exists(sel) {
				t.Errorf("add individual enrollment: no %s", sel)
			}
		}
		var prefill string
		f.evalInto(`document.querySelector('#initial-twin').value`, &prefill)
		if !jsonEqual(prefill, `{"tags":{},"properties":{"desired":{}}}`) {
			t.Errorf("#initial-twin is prefilled with %q, want {\"tags\":{},\"properties\":{\"desired\":{}}}", prefill)
		}
		f.checkLabels("form#enrollment-form")
		ownerForm = f.snapshotForm("form#enrollment-form", "registration-id", "initial-twin")

		f.fill("#registration-id", individualID)
		f.click("#iot-edge-true")
		f.fill("#initial-twin", initialTwin)
		if !f.bool(`document.querySelector('#auto-generate').checked`) {
			f.click("#auto-generate")
		}
		if !f.bool(`document.querySelector('#iot-edge-true').checked && document.querySelector('#auto-generate').checked`) {
			t.Fatal("#iot-edge-true or #auto-generate is not checked after clicking it")
		}
		f.screenshot("add-individual", "")
		f.click("#save")
		f.waitPage("/console/enrollments/"+individualID, "button#reveal-primary")

		// The key is hidden until revealed.
		var hidden struct {
			Shown string `json:"shown"`
		}
		f.evalInto(`(() => { const e = document.querySelector('#primary-key-value');
			if (!e) return {shown: ''};
			if (e instanceof HTMLInputElement) return {shown: e.type === 'password' ? '' : e.value};
			return {shown: e.innerText.trim()} })()`, &hidden)
		if keyBytes(hidden.Shown) == 64 {
			t.Errorf("#primary-key-value shows the key before #reveal-primary is pressed")
		}
		if !f.exists("form#delete-enrollment") {
			t.Errorf("enrollment details (owner): no form#delete-enrollment")
		}
		deleteForm = f.snapshotForm("form#delete-enrollment")

		f.click("#reveal-primary")
		f.waitFor("a 64-byte key in #primary-key-value", `(() => { const e = document.querySelector('#primary-key-value');
			const v = ((e instanceof HTMLInputElement) ? e.value : e.innerText).trim();
			return /^[A-Za-z0-9+\/]{86}==$/.test(v) })()`)
		individualKey = f.text("#primary-key-value")
		if n := keyBytes(individualKey); n != 64 {
			t.Fatalf("#primary-key-value = %q: %d bytes, want a base64 key of 64 bytes", individualKey, n)
		}
		var cli symmetricKeys
		mustJSON(t, srv.usher(append([]string{"enrollment", "show", "--enrollment-id", individualID, "--show-keys"}, dd...)...), &cli)
		if cli.Attestation.SymmetricKey.PrimaryKey != individualKey {
			t.Errorf("the console shows primary key %q, usher enrollment show says %q", individualKey, cli.Attestation.SymmetricKey.PrimaryKey)
		}
		if !cli.Capabilities.IoTEdge {
			t.Errorf("saved enrollment has capabilities.iotEdge=false, want true")
		}
		if cli.InitialTwin.Tags["environment"] != "test" {
			t.Errorf("saved enrollment's initial twin tags = %v, want environment=test", cli.InitialTwin.Tags)
		}

		if err := f.grantClipboard(); err != nil {
			t.Logf("clipboard permissions: %v", err)
		}
		f.click("#copy-primary")
		f.waitFor(`#copy-primary[data-copied="true"]`, `document.querySelector('#copy-primary').dataset.copied === 'true'`)
		if clip, err := f.readClipboard(); err != nil {
			t.Logf("clipboard not readable here (%v); data-copied=true is the check", err)
		} else if clip != individualKey {
			t.Errorf("the clipboard holds %q after #copy-primary, want the primary key %q", clip, individualKey)
		} else {
			t.Logf("clipboard holds the primary key")
		}
		f.screenshot("enrollment-details", "enrollment-details")
	})

	f.step("3. an invalid initial twin shows an error and saves nothing", func() {
		f.click("a#nav-enrollments")
		f.waitPage("/console/enrollments", "a#add-individual")
		f.click("a#add-individual")
		f.waitPage("/console/enrollments/new", "form#enrollment-form")
		f.eval(`window.__usherSamePage = true`)
		f.fill("#registration-id", badID)
		f.fill("#initial-twin", `{"tags": [}`)
		f.click("#save")
		f.waitFor("a visible #initial-twin-error", `(() => { const e = document.querySelector('#initial-twin-error');
			return document.readyState === 'complete' && !!e && e.getClientRects().length > 0 && e.innerText.trim() !== '' })()`)
		msg := f.text("#initial-twin-error")
		if strings.HasPrefix(msg, "{") || strings.Contains(msg, `"error`) || len(msg) < 10 {
			t.Errorf("#initial-twin-error = %q: want a message in plain words", msg)
		}
		if f.bool(`window.__usherSamePage === true`) {
			t.Logf("the page's script caught the invalid twin before sending: %q", msg)
		} else {
			t.Logf("the server refused the invalid twin: %q", msg)
		}
		if f.exists("#form-error") && f.text("#form-error") != "" {
			t.Logf("#form-error: %q", f.text("#form-error"))
		}
		f.screenshot("add-individual-error", "add-individual-error")
		if out, err := srv.usherErr(append([]string{"enrollment", "show", "--enrollment-id", badID}, dd...)...); err == nil {
			t.Errorf("the invalid form saved enrollment %s: %s", badID, out)
		}

		// Without the page's script: post the same form straight to the
		// server with the session cookie and the CSRF token.
		names := ownerForm.Names
		if len(names) != 2 || names[0] == "" || names[1] == "" {
			t.Fatalf("#registration-id / #initial-twin have no name attributes: %q", names)
		}
		cookies := f.cookies()
		code, body := srv.postForm(ownerForm.Action, cookies, ownerForm.values(map[string]string{names[0]: badID, names[1]: `{"tags": [}`}))
		t.Logf("POST %s with an invalid twin, no script: HTTP %d", ownerForm.Action, code)
		if code == http.StatusForbidden || code/100 == 3 || code/100 == 5 {
			t.Errorf("POST with an invalid twin answered HTTP %d; want the form again with its error", code)
		}
		if m := regexp.MustCompile(`id="initial-twin-error"[^>]*>([^<]*)<`).FindStringSubmatch(body); m == nil {
			t.Errorf("the server's answer to an invalid twin has no #initial-twin-error")
		} else {
			t.Logf("the server's #initial-twin-error: %q", strings.TrimSpace(m[1]))
		}
		if out, err := srv.usherErr(append([]string{"enrollment", "show", "--enrollment-id", badID}, dd...)...); err == nil {
			t.Errorf("the server saved enrollment %s with an invalid twin: %s", badID, out)
		}
		// The same post with a valid twin does save: the refusal above is
		// the validation, not the way the test posts.
		code, _ = srv.postForm(ownerForm.Action, cookies, ownerForm.values(map[string]string{names[0]: "console-direct", names[1]: initialTwin}))
		t.Logf("POST %s with a valid twin, no script: HTTP %d", ownerForm.Action, code)
		if _, err := srv.usherErr(append([]string{"enrollment", "show", "--enrollment-id", "console-direct"}, dd...)...); err != nil {
			t.Errorf("a valid POST of the form as the owner (HTTP %d) saved nothing: %v", code, err)
		} else {
			srv.usher(append([]string{"enrollment", "delete", "--enrollment-id", "console-direct"}, dd...)...)
		}
	})

	f.step("4. add an enrollment group and derive a device key", func() {
		f.click("a#nav-enrollments")
		f.waitPage("/console/enrollments", "a#add-group")
		f.click("a#add-group")
		f.waitPage("/console/groups/new", "form#group-form")
		f.checkLabels("form#group-form")
		f.fill("#group-name", groupID)
		f.screenshot("add-group", "")
		f.click(`form#group-form button[type=submit]`)
		f.waitPage("/console/groups/"+groupID, "form#derive")
		if !f.exists("form#delete-group") {
			t.Errorf("group details (owner): no form#delete-group")
		}
		var cli symmetricKeys
		mustJSON(t, srv.usher(append([]string{"enrollment-group", "show", "--group-id", groupID, "--show-keys"}, dd...)...), &cli)
		groupKey = cli.Attestation.SymmetricKey.PrimaryKey
		if n := keyBytes(groupKey); n != 64 {
			t.Errorf("group %s has a %d-byte primary key, want 64", groupID, n)
		}
		derivedKey = f.derive(memberID)
		var want string
		mustJSON(t, srv.usher(append([]string{"enrollment-group", "compute-device-key", "--key", groupKey, "--registration-id", memberID}, dd...)...), &want)
		if derivedKey != want {
			t.Fatalf("#derived-key = %q, usher enrollment-group compute-device-key says %q", derivedKey, want)
		}
		f.screenshot("group-derived-key", "")
	})

	f.step("5. provision a device with the derived key and see its registration record", func() {
		out := srv.usher(append([]string{"device", "register", "--registration-id", memberID, "--key", derivedKey}, dd...)...)
		var reg struct {
			Status string `json:"status"`
		}
		mustJSON(t, out, &reg)
		if reg.Status != "assigned" {
			t.Fatalf("usher device register: status %q, want assigned", reg.Status)
		}
		f.navigate("/console/groups/" + groupID)
		row := fmt.Sprintf(`table#registrations tr[data-registration-id=%q]`, memberID)
		f.waitPage("/console/groups/"+groupID, row)
		text := f.text(row)
		if !strings.Contains(strings.ToLower(text), "assigned") || !strings.Contains(text, "hub.usher.test") {
			t.Errorf("registration row %q: want status assigned and hub hub.usher.test", text)
		}
		if !f.exists(row + " form.delete-registration") {
			t.Errorf("registration row (owner): no form.delete-registration")
		}
		// Derive once more so the documentation shows both.
		f.derive(memberID)
		f.eval(`(() => { document.querySelector('form#derive').scrollIntoView({block: 'start'}); window.scrollBy(0, -24); return true })()`)
		f.screenshot("group-details", "group-details")
	})

	f.step("6. hub devices, a twin, deployments", func() {
		// The individual enrollment's device too, for its tags and Edge flag.
		srv.usher(append([]string{"device", "register", "--registration-id", individualID, "--key", individualKey}, dd...)...)
		srv.usher(append([]string{"hub", "deployment", "create", "--deployment-id", "edge-test",
			"--target-condition", "tags.environment='test'", "--priority", "10", "--content", `{"modulesContent":{}}`}, dd...)...)
		f.click("a#nav-hub-devices")
		row := fmt.Sprintf(`table#devices tr[data-device-id=%q]`, memberID)
		f.waitPage("/console/hub/devices", row)
		if !f.exists(fmt.Sprintf(`table#devices tr[data-device-id=%q]`, individualID)) {
			t.Errorf("hub devices: no row for %s", individualID)
		}
		f.screenshot("hub-devices", "hub-devices")
		if f.exists(row + " a") {
			f.click(row + " a")
		} else {
			t.Errorf("hub devices: the row of %s has no link to the device", memberID)
			f.navigate("/console/hub/devices/" + memberID)
		}
		f.waitPage("/console/hub/devices/"+memberID, "pre#twin")
		if twin := f.text("pre#twin"); !strings.Contains(twin, memberID) {
			t.Errorf("pre#twin of %s does not name the device: %.200q", memberID, twin)
		}
		f.navigate("/console/hub/devices/" + individualID)
		f.waitPage("/console/hub/devices/"+individualID, "pre#twin")
		if twin := f.text("pre#twin"); !strings.Contains(twin, `"environment"`) || !strings.Contains(twin, `"test"`) {
			t.Errorf("pre#twin of %s lacks the tag environment=test from its enrollment: %.300q", individualID, twin)
		}
		f.screenshot("hub-device", "hub-device")
		f.click("a#nav-deployments")
		f.waitPage("/console/hub/deployments", "table#deployments")
		if text := f.text("table#deployments"); !strings.Contains(text, "edge-test") || !strings.Contains(text, "environment") {
			t.Errorf("table#deployments does not show deployment edge-test and its target condition: %.300q", text)
		}
		f.screenshot("deployments", "deployments")
	})

	f.step("7. a read-only policy sees no Add/Delete and gets 403 when it posts", func() {
		// The enrollments list, with both kinds, for the documentation.
		f.click("a#nav-enrollments")
		f.waitPage("/console/enrollments", fmt.Sprintf(`table#enrollments tr[data-id=%q]`, individualID))
		if f.exists(fmt.Sprintf(`table#enrollments tr[data-id=%q]`, badID)) {
			t.Errorf("enrollments list shows %s, which must not have been saved", badID)
		}
		f.screenshot("enrollments", "enrollments")
		// Paging: 21 more groups make two pages of 20.
		for i := range 21 {
			srv.usher(append([]string{"enrollment-group", "create", "--group-id", fmt.Sprintf("page-group-%02d", i)}, dd...)...)
		}
		f.click("a#tab-groups")
		f.waitFor("the groups tab", fmt.Sprintf(`document.readyState === 'complete' && new URLSearchParams(location.search).get('tab') === 'groups' && !!document.querySelector('table#enrollments tr[data-id=%q]')`, groupID))
		if n := f.count("table#enrollments tr[data-id]"); n != 20 {
			t.Errorf("groups tab, page 1: %d rows, want 20", n)
		}
		f.click("a#next-page")
		f.waitFor("page 2 of the groups", `document.readyState === 'complete' && !!document.querySelector('a#prev-page')`)
		if n := f.count("table#enrollments tr[data-id]"); n != 2 {
			t.Errorf("groups tab, page 2: %d rows, want 2", n)
		}
		if f.exists("a#next-page") {
			t.Errorf("groups tab, last page: a#next-page is there")
		}
		f.fill("input#filter", "console")
		f.do("submit the filter", chromedp.Submit(chromedp.CSS("form#filter")))
		f.waitFor("the filtered groups", fmt.Sprintf(`document.readyState === 'complete' && new URLSearchParams(location.search).get('filter') === 'console' && !!document.querySelector('table#enrollments tr[data-id=%q]')`, groupID))
		if n := f.count("table#enrollments tr[data-id]"); n != 1 {
			t.Errorf("groups filtered by \"console\": %d rows, want 1", n)
		}
		f.fill("input#filter", "no-such-enrollment")
		f.do("submit the filter", chromedp.Submit(chromedp.CSS("form#filter")))
		f.waitFor("an empty filtered list", `document.readyState === 'complete' && new URLSearchParams(location.search).get('filter') === 'no-such-enrollment' && !document.querySelector('table#enrollments tr[data-id]')`)

		out := srv.usher(append([]string{"policy", "create", "reader", "--rights", "EnrollmentRead,RegistrationStatusRead"}, dd...)...)
		var reader struct {
			PrimaryConnectionString string `json:"primaryConnectionString"`
		}
		mustJSON(t, out, &reader)
		f.click("#signout-submit")
		f.waitFor("the sign-in form after signing out", `document.readyState === 'complete' && !!document.querySelector('form#signin')`)
		// The reader signs in with its connection string.
		f.fill("#policy", "")
		f.fill("#key", "")
		f.fill("#connection-string", reader.PrimaryConnectionString)
		f.click("#signin-submit")
		f.waitFor("the overview as reader", `document.readyState === 'complete' && !!document.querySelector('#id-scope')`)

		f.click("a#nav-enrollments")
		f.waitPage("/console/enrollments", "table#enrollments")
		for _, sel := range []string{"#add-individual", "#add-group"} {
			if f.exists(sel) {
				t.Errorf("reader: the enrollments page has %s", sel)
			}
		}
		f.screenshot("reader-enrollments", "")
		f.navigate("/console/enrollments/" + individualID)
		f.waitPage("/console/enrollments/"+individualID, "#primary-key-value")
		if f.exists("form#delete-enrollment") {
			t.Errorf("reader: the enrollment details have form#delete-enrollment")
		}
		f.navigate("/console/groups/" + groupID)
		f.waitPage("/console/groups/"+groupID, fmt.Sprintf(`table#registrations tr[data-registration-id=%q]`, memberID))
		for _, sel := range []string{"form#delete-group", "form.delete-registration"} {
			if f.exists(sel) {
				t.Errorf("reader: the group details have %s", sel)
			}
		}
		f.screenshot("reader-group", "")
		// Hub pages need more than the reader's rights.
		resp, err := chromedp.Run(f.ctx, chromedp.NavigateResponse(srv.origin+"/console/hub/devices"))
		if err != nil {
			t.Fatalf("open /console/hub/devices as reader: %v", err)
		}
		t.Logf("reader: /console/hub/devices answers HTTP %d (nav link shown: %v)", resp.Status, f.exists("a#nav-hub-devices"))
		if f.exists("table#devices") {
			t.Errorf("reader (EnrollmentRead,RegistrationStatusRead) sees the hub's devices")
		}

		// Post anyway, with the reader's session and a valid CSRF token.
		tok := f.csrf()
		cookies := f.cookies()
		names := ownerForm.Names
		code, body := srv.postForm(srv.origin+"/console/enrollments/new", cookies,
			ownerForm.values(map[string]string{"csrf": tok, names[0]: "console-reader-post", names[1]: initialTwin}))
		if code != http.StatusForbidden {
			t.Errorf("reader POST /console/enrollments/new: HTTP %d, want 403 (%.200q)", code, body)
		}
		if _, err := srv.usherErr(append([]string{"enrollment", "show", "--enrollment-id", "console-reader-post"}, dd...)...); err == nil {
			t.Errorf("the reader's POST created enrollment console-reader-post")
		}
		code, _ = srv.postForm(deleteForm.Action, cookies, deleteForm.values(map[string]string{"csrf": tok}))
		if code != http.StatusForbidden {
			t.Errorf("reader POST %s (delete): HTTP %d, want 403", deleteForm.Action, code)
		}
		if _, err := srv.usherErr(append([]string{"enrollment", "show", "--enrollment-id", individualID}, dd...)...); err != nil {
			t.Errorf("the reader's delete POST removed %s: %v", individualID, err)
		}
	})

	f.step("8. phone width", func() {
		f.click("#signout-submit")
		f.waitFor("the sign-in form", `document.readyState === 'complete' && !!document.querySelector('form#signin')`)
		f.do("viewport 375x800", chromedp.EmulateViewport(375, 800))
		f.fill("#connection-string", "")
		f.fill("#policy", owner.SharedAccessKeyName)
		f.fill("#key", owner.SharedAccessKey)
		f.screenshot("signin-phone", "")
		f.click("#signin-submit")
		f.waitFor("the overview", `document.readyState === 'complete' && !!document.querySelector('#id-scope')`)
		f.click("a#nav-enrollments")
		f.waitPage("/console/enrollments", fmt.Sprintf(`table#enrollments tr[data-id=%q]`, individualID))
		var width struct {
			Scroll int `json:"scroll"`
			Inner  int `json:"inner"`
		}
		f.evalInto(`({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})`, &width)
		if width.Scroll > width.Inner+1 {
			t.Errorf("at 375 px the enrollments page is %d px wide: the whole page scrolls sideways", width.Scroll)
		}
		f.screenshot("enrollments-phone", "enrollments-phone")
	})

	f.step("9. delete a registration record", func() {
		f.do("viewport 1280x800", chromedp.EmulateViewport(1280, 800))
		f.navigate("/console/groups/" + groupID)
		row := fmt.Sprintf(`table#registrations tr[data-registration-id=%q]`, memberID)
		f.waitPage("/console/groups/"+groupID, row+" form.delete-registration")
		f.click(row + ` form.delete-registration [type=submit]`)
		f.waitFor("the record gone from the group page", fmt.Sprintf(`document.readyState === 'complete' && location.pathname === %s && !!document.querySelector('table#registrations, #registrations') && !document.querySelector(%s)`,
			jsStr("/console/groups/"+groupID), jsStr(row)))
		if out, err := srv.usherErr(append([]string{"enrollment-group", "registration", "show", "--group-id", groupID, "--registration-id", memberID}, dd...)...); err == nil {
			t.Errorf("the registration record of %s is still there after Delete: %s", memberID, out)
		}
		f.screenshot("registration-deleted", "")
	})

	f.mu.Lock()
	for _, e := range f.pageErrors {
		t.Errorf("page: %s", e)
	}
	for _, u := range f.foreign {
		t.Errorf("the console loaded %s from another origin (it must work offline)", u)
	}
	f.mu.Unlock()
	t.Logf("the whole flow took %s, %d screenshots in %s", time.Since(start).Round(time.Millisecond), f.shots, f.artifacts)
}

// derive submits the group page's derive box and returns the derived key.
func (f *flow) derive(registrationID string) string {
	f.t.Helper()
	// Empty the output first: a reload or the page's script fills it again.
	f.eval(`(() => { const o = document.querySelector('#derived-key'); if (o) o.textContent = ''; return true })()`)
	f.fill("#derive-registration-id", registrationID)
	f.click("#derive-submit")
	f.waitFor("a 32-byte key in #derived-key", `(() => { const o = document.querySelector('#derived-key');
		return document.readyState === 'complete' && !!o && /^[A-Za-z0-9+\/]{43}=$/.test(o.textContent.trim()) })()`)
	k := f.text("#derived-key")
	if n := keyBytes(k); n != 32 {
		f.t.Fatalf("#derived-key = %q: %d bytes, want a base64 HMAC-SHA256 of 32 bytes", k, n)
	}
	return k
}

// checkLabels fails the test for each visible field of the form that has no
// label a screen reader would read.
func (f *flow) checkLabels(form string) {
	f.t.Helper()
	var missing []string
	f.evalInto(fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).filter(e =>
		e.type !== 'hidden' && e.type !== 'submit' && e.getClientRects().length > 0 &&
		e.labels.length === 0 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')
	).map(e => e.id || e.name || e.outerHTML.slice(0, 60))`, jsStr(form+" input, "+form+" select, "+form+" textarea")), &missing)
	for _, m := range missing {
		f.t.Errorf("%s: field %s has no label", form, m)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %.200q: %v", b, err)
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
