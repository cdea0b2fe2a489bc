package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/usher-iot/usher/internal/dps"
)

// TestElementContract checks the element IDs and names the browser test
// (test/browser) relies on, page by page.
func TestElementContract(t *testing.T) {
	tc := newTestConsole(t)
	tc.mustEnrollment(t, "dev-1")
	tc.mustGroup(t, "grp")
	putRegistration(t, tc, dps.Registration{RegistrationID: "dev-1", DeviceID: "dev-1", AssignedHub: "hub.usher.test", Status: dps.Assigned})
	putRegistration(t, tc, dps.Registration{RegistrationID: "m-1", GroupID: "grp", DeviceID: "m-1", AssignedHub: "hub.usher.test", Status: dps.Assigned})

	signin := tc.browser(t).get("/console/signin").body
	b := tc.signedIn(t, tc.owner)
	refused := tc.browser(t).post("/console/signin", url.Values{"policy": {"x"}, "key": {"y"}}).body
	invalid := b.submit("/console/enrollments/new", with(enrollmentForm("bad id"), "initialTwin", "{")).body
	derived := b.submit("/console/groups/grp/derive", url.Values{"registrationId": {"m-2"}}).body
	nav := []string{"a#nav-overview[href=/console/]", "a#nav-enrollments", "a#nav-hub-devices", "a#nav-deployments", "form#signout[method=post][action=/console/signout]", "button#signout-submit"}
	pages := []struct {
		name string
		body string
		want []string
	}{
		{"sign-in", signin, []string{
			"form#signin[method=post][action=/console/signin]", "input#policy[name=policy]", "input#key[name=key]",
			"input#connection-string[name=connectionString]", "button#signin-submit",
		}},
		{"refused sign-in", refused, []string{"form#signin", "#signin-error"}},
		{"overview", b.get("/console/").body, append([]string{"#id-scope", "a#download-ca[href=/console/ca.pem]"}, nav...)},
		{"individual enrollments", b.get("/console/enrollments").body, append([]string{
			"a#tab-individual", "a#tab-groups", "form#filter", "input#filter[name=filter]",
			"a#add-individual[href=/console/enrollments/new]", "a#add-group[href=/console/groups/new]",
			"table#enrollments", "tr[data-id=dev-1]",
		}, nav...)},
		{"groups", b.get("/console/enrollments?tab=groups").body, []string{"table#enrollments", "tr[data-id=grp]", "a#tab-groups[aria-current=page]"}},
		{"add individual enrollment", b.get("/console/enrollments/new").body, []string{
			"form#enrollment-form[method=post][action=/console/enrollments/new]", "select#mechanism[name=mechanism]",
			"input#registration-id[name=registrationId]", "input#device-id[name=deviceId]",
			"input#iot-edge-true[name=iotEdge][value=true][type=radio]", "input#iot-edge-false[name=iotEdge][value=false][type=radio][checked]",
			"textarea#initial-twin[name=initialTwin]", "input#auto-generate[name=autoGenerate][type=checkbox][checked]",
			"input#primary-key[name=primaryKey]", "input#secondary-key[name=secondaryKey]",
			"select#provisioning-status[name=provisioningStatus]", "button#save",
		}},
		{"invalid individual enrollment", invalid, []string{"#registration-id-error", "#initial-twin-error", "form#enrollment-form"}},
		{"add enrollment group", b.get("/console/groups/new").body, []string{
			"form#group-form[method=post][action=/console/groups/new]", "input#group-name[name=groupName]", "select#mechanism",
			"input#iot-edge-true", "input#iot-edge-false", "textarea#initial-twin", "input#auto-generate", "input#primary-key",
			"input#secondary-key", "select#provisioning-status", "button#save",
		}},
		{"enrollment details", b.get("/console/enrollments/dev-1").body, []string{
			"#primary-key-value[data-key]", "button#reveal-primary", "button#copy-primary",
			"#secondary-key-value[data-key]", "button#reveal-secondary", "button#copy-secondary",
			"form#delete-enrollment[method=post]", "table#registrations", "tr[data-registration-id=dev-1]", "form.delete-registration",
		}},
		{"group details", b.get("/console/groups/grp").body, []string{
			"#primary-key-value", "button#reveal-primary", "button#copy-primary", "#secondary-key-value", "button#reveal-secondary",
			"button#copy-secondary", "form#delete-group[method=post]", "form#derive[method=post]",
			"input#derive-registration-id[name=registrationId]", "button#derive-submit",
			"table#registrations", "tr[data-registration-id=m-1]", "form.delete-registration",
		}},
		{"derived key", derived, []string{"output#derived-key"}},
		{"hub devices", b.get("/console/hub/devices").body, []string{"table#devices"}},
		{"deployments", b.get("/console/hub/deployments").body, []string{"table#deployments"}},
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			for _, sel := range p.want {
				if !has(p.body, sel) {
					t.Errorf("no %s", sel)
				}
			}
			checkMarkup(t, p.body)
		})
	}
	t.Run("mechanism options", func(t *testing.T) {
		form := b.get("/console/enrollments/new").body
		for _, want := range []string{
			`<option value="symmetricKey" selected>Symmetric Key</option>`,
			`<option value="x509" disabled>X.509 (coming later)</option>`,
			`<option value="tpm" disabled>TPM (coming later)</option>`,
		} {
			if !strings.Contains(form, want) {
				t.Errorf("the mechanism select lacks %s", want)
			}
		}
		if got := text(form, "initial-twin"); got != `{"tags":{},"properties":{"desired":{}}}` {
			t.Errorf("#initial-twin prefilled with %q", got)
		}
		for _, label := range []string{"Individual enrollments", "Enrollment groups"} {
			if !strings.Contains(b.get("/console/enrollments").body, ">"+label+"</a>") {
				t.Errorf("no tab labelled %q", label)
			}
		}
	})
}

// checkMarkup checks what every page owes accessibility: the language,
// a heading, and a label for every field.
func checkMarkup(t *testing.T, body string) {
	t.Helper()
	if !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, "<h1>") {
		t.Errorf("the page lacks lang=en or an h1")
	}
	labelFor := map[string]bool{}
	for _, m := range regexp.MustCompile(`<label for="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		labelFor[m[1]] = true
	}
	for _, e := range allElements(body) {
		if e.tag != "input" && e.tag != "select" && e.tag != "textarea" || e.attrs["type"] == "hidden" {
			continue
		}
		id := e.attrs["id"]
		if id == "filter" {
			// form#filter and input#filter share the ID the browser test
			// names; the input is labelled by the <label> around it.
			if !regexp.MustCompile(`<label>[^<]*\s*<input id="filter"`).MatchString(body) {
				t.Errorf("input#filter is not inside its label")
			}
			continue
		}
		if !labelFor[id] {
			t.Errorf("%s#%s has no <label for>", e.tag, id)
		}
	}
}

func TestOverviewAndCA(t *testing.T) {
	tc := newTestConsole(t)
	b := tc.signedIn(t, tc.owner)
	r := b.get("/console/")
	for id, want := range map[string]string{
		"id-scope": tc.idScope, "device-endpoint": "https://usher.test:8443", "mqtt-endpoint": "mqtts://usher.test",
		"hub-host-name": "hub.usher.test",
	} {
		if got := text(r.body, id); got != want {
			t.Errorf("#%s = %q, want %q", id, got, want)
		}
	}
	ca := b.get("/console/ca.pem")
	if ca.status != http.StatusOK || ca.body != tc.caPEM || !strings.Contains(ca.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("ca.pem: %d %q %q", ca.status, ca.header.Get("Content-Disposition"), ca.body)
	}
	t.Run("404/operator's own certificate", func(t *testing.T) {
		own := newTestConsole(t, consoleOptions{noCA: true})
		b := own.signedIn(t, own.owner)
		r := b.get("/console/ca.pem")
		if r.status != http.StatusNotFound || !strings.Contains(r.header.Get("Content-Type"), "text/html") || text(r.body, "error-message") == "" {
			t.Errorf("status %d %s", r.status, r.header.Get("Content-Type"))
		}
	})
	t.Run("303/ca.pem needs a session", func(t *testing.T) {
		if r := tc.browser(t).get("/console/ca.pem"); r.status != http.StatusSeeOther {
			t.Errorf("status %d", r.status)
		}
	})
}

// TestBadInputIsNeverA500 sends requests a browser would not.
func TestBadInputIsNeverA500(t *testing.T) {
	tc := newTestConsole(t)
	tc.mustGroup(t, "grp")
	b := tc.signedIn(t, tc.owner)
	gets := map[string]int{
		"/console":                                         http.StatusSeeOther,
		"/console/no-such-page":                            http.StatusNotFound,
		"/console/enrollments/nope":                        http.StatusNotFound,
		"/console/groups/nope":                             http.StatusNotFound,
		"/console/enrollments?page=-5&tab=xyz":             http.StatusOK,
		"/console/enrollments?page=99999999999999999999":   http.StatusOK,
		"/console/groups/grp?after=%25%25%25":              http.StatusBadRequest,
		"/console/static/nope.js":                          http.StatusNotFound,
		"/console/enrollments/" + strings.Repeat("x", 300): http.StatusNotFound,
	}
	for path, want := range gets {
		if r := b.get(path); r.status != want {
			t.Errorf("GET %s = %d, want %d", path, r.status, want)
		}
	}
	posts := []struct {
		path string
		form url.Values
		want int
	}{
		{"/console/enrollments/new", url.Values{"initialTwin": {strings.Repeat("x", 200<<10)}}, http.StatusRequestEntityTooLarge},
		{"/console/enrollments/new", url.Values{}, http.StatusBadRequest},
		{"/console/groups/nope/derive", url.Values{"registrationId": {"x"}}, http.StatusNotFound},
		{"/console/groups/nope/delete", nil, http.StatusNotFound},
		{"/console/groups/grp/registrations/nope/delete", nil, http.StatusNotFound},
		{"/console/enrollments/nope/registration/delete", nil, http.StatusNotFound},
		{"/console/enrollments/new", url.Values{"initialTwin": {`{"tags":{"deep":` + strings.Repeat(`{"a":`, 20) + "1" + strings.Repeat("}", 20) + "}}"}}, http.StatusBadRequest},
	}
	for _, p := range posts {
		r := b.submit(p.path, p.form)
		if r.status != p.want {
			t.Errorf("POST %s = %d, want %d\n%.300s", p.path, r.status, p.want, text(r.body, "error-message"))
		}
	}
	if r := b.get("/console/enrollments/new"); r.status != http.StatusOK {
		t.Errorf("the console broke: %d", r.status)
	}
}

func TestAssets(t *testing.T) {
	tc := newTestConsole(t)
	b := tc.browser(t)
	page := b.get("/console/signin").body
	for _, name := range []string{"console.css", "console.js"} {
		m := regexp.MustCompile(`"(/console/static/` + regexp.QuoteMeta(name) + `\?v=[0-9a-f]+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("the page does not load %s", name)
		}
		r := b.get(m[1])
		if r.status != http.StatusOK || len(r.body) == 0 || strings.Contains(r.body, "http://") || strings.Contains(r.body, "https://") {
			t.Errorf("%s: %d, %d bytes (assets must not load anything from elsewhere)", name, r.status, len(r.body))
		}
	}
}
