package console_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
)

func TestAddIndividualEnrollment(t *testing.T) {
	tc := newTestConsole(t)
	b := tc.signedIn(t, tc.owner)
	if r := b.get("/console/enrollments/new"); r.status != http.StatusOK || !has(r.body, "form#enrollment-form") {
		t.Fatalf("GET the form: %d", r.status)
	}
	r := b.submit("/console/enrollments/new", with(enrollmentForm("edge-01"),
		"iotEdge", "true", "deviceId", "edge-device-01",
		"initialTwin", `{"tags":{"environment":"test"},"properties":{"desired":{"interval":30}}}`))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/enrollments/edge-01" {
		t.Fatalf("save: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	e, err := tc.dps.Enrollment(context.Background(), "edge-01")
	if err != nil {
		t.Fatal(err)
	}
	if !e.IoTEdge || e.DeviceID != "edge-device-01" || e.ProvisioningStatus != dps.Enabled || e.Attestation.Type != dps.SymmetricKey {
		t.Errorf("saved %+v", e)
	}
	if e.InitialTwin == nil {
		t.Fatal("no initial twin saved")
	}
	if diff := cmp.Diff(map[string]any{"environment": "test"}, e.InitialTwin.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if got := fmt.Sprint(e.InitialTwin.Desired["interval"]); got != "30" {
		t.Errorf("desired interval = %v", e.InitialTwin.Desired["interval"])
	}
	for name, k := range map[string]string{"primary": e.Attestation.PrimaryKey, "secondary": e.Attestation.SecondaryKey} {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(raw) != dps.GeneratedKeyBytes {
			t.Errorf("%s key %q: %d bytes (%v), want a generated %d-byte key", name, k, len(raw), err, dps.GeneratedKeyBytes)
		}
	}

	page := b.get(r.header.Get("Location"))
	if page.status != http.StatusOK {
		t.Fatalf("details: %d", page.status)
	}
	for _, k := range []struct{ id, key string }{{"primary-key-value", e.Attestation.PrimaryKey}, {"secondary-key-value", e.Attestation.SecondaryKey}} {
		els := elements(page.body, "id", k.id)
		if len(els) != 1 || els[0].attrs["data-key"] != k.key {
			t.Errorf("#%s: %v, want data-key with the key", k.id, els)
		}
		if shown := text(page.body, k.id); strings.Contains(shown, k.key) || !strings.Contains(shown, "•") {
			t.Errorf("#%s shows %q before it is revealed", k.id, shown)
		}
	}
	if got := text(page.body, "detail-iot-edge"); got != "True" {
		t.Errorf("IoT Edge shown as %q", got)
	}
	if twin := text(page.body, "initial-twin-value"); !strings.Contains(twin, `"environment": "test"`) {
		t.Errorf("initial twin shown as %q", twin)
	}
}

func TestAddIndividualEnrollmentWithOwnKeys(t *testing.T) {
	tc := newTestConsole(t)
	b := tc.signedIn(t, tc.owner)
	primary, secondary := sasKey(t), sasKey(t)
	r := b.submit("/console/enrollments/new", without(with(enrollmentForm("own-keys"),
		"primaryKey", primary, "secondaryKey", secondary, "provisioningStatus", "disabled"), "autoGenerate"))
	if r.status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", r.status, r.body)
	}
	e, err := tc.dps.Enrollment(context.Background(), "own-keys")
	if err != nil {
		t.Fatal(err)
	}
	if e.Attestation.PrimaryKey != primary || e.Attestation.SecondaryKey != secondary || e.ProvisioningStatus != dps.Disabled {
		t.Errorf("saved keys %q/%q status %s; want the supplied keys, disabled", e.Attestation.PrimaryKey, e.Attestation.SecondaryKey, e.ProvisioningStatus)
	}
}

func TestAddIndividualEnrollmentRefused(t *testing.T) {
	tc := newTestConsole(t)
	tc.mustEnrollment(t, "taken")
	b := tc.signedIn(t, tc.owner)
	tests := []struct {
		name    string
		form    url.Values
		status  int
		errorID string
	}{
		{"initial-twin-error/not JSON", with(enrollmentForm("bad-1"), "initialTwin", `{"tags": [}`), 400, "initial-twin-error"},
		{"initial-twin-error/unfinished", with(enrollmentForm("bad-1"), "initialTwin", `{"tags":{}`), 400, "initial-twin-error"},
		{"initial-twin-error/an array", with(enrollmentForm("bad-1"), "initialTwin", `[]`), 400, "initial-twin-error"},
		{"initial-twin-error/reported properties", with(enrollmentForm("bad-1"), "initialTwin", `{"properties":{"reported":{}}}`), 400, "initial-twin-error"},
		{"initial-twin-error/unknown member", with(enrollmentForm("bad-1"), "initialTwin", `{"tags":{},"deviceId":"x"}`), 400, "initial-twin-error"},
		{"initial-twin-error/tags not an object", with(enrollmentForm("bad-1"), "initialTwin", `{"tags":"test"}`), 400, "initial-twin-error"},
		{"initial-twin-error/text after the object", with(enrollmentForm("bad-1"), "initialTwin", `{} {}`), 400, "initial-twin-error"},
		{"initial-twin-error/dotted tag name", with(enrollmentForm("bad-1"), "initialTwin", `{"tags":{"a.b":1}}`), 400, "initial-twin-error"},
		{"registration-id-error/empty", with(enrollmentForm(""), "registrationId", ""), 400, "registration-id-error"},
		{"registration-id-error/bad character", with(enrollmentForm("bad/1")), 400, "registration-id-error"},
		{"registration-id-error/exists", with(enrollmentForm("TAKEN")), 409, "registration-id-error"},
		{"device-id-error/bad character", with(enrollmentForm("bad-1"), "deviceId", "a/b"), 400, "device-id-error"},
		{"primary-key-error/missing", without(with(enrollmentForm("bad-1"), "secondaryKey", sasKey(t)), "autoGenerate"), 400, "primary-key-error"},
		{"primary-key-error/not base64", without(with(enrollmentForm("bad-1"), "primaryKey", "not a key", "secondaryKey", sasKey(t)), "autoGenerate"), 400, "primary-key-error"},
		{"secondary-key-error/too short", without(with(enrollmentForm("bad-1"), "primaryKey", sasKey(t), "secondaryKey", "AAAA"), "autoGenerate"), 400, "secondary-key-error"},
		{"form-error/X.509", with(enrollmentForm("bad-1"), "mechanism", "x509"), 400, "form-error"},
		{"form-error/provisioning status", with(enrollmentForm("bad-1"), "provisioningStatus", "maybe"), 400, "form-error"},
		{"form-error/IoT Edge", with(enrollmentForm("bad-1"), "iotEdge", "yes"), 400, "form-error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tc.enrollmentCount(t)
			r := b.submit("/console/enrollments/new", tt.form)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d\n%s", r.status, tt.status, r.body)
			}
			msg := text(r.body, tt.errorID)
			if msg == "" {
				t.Fatalf("no #%s in the answer", tt.errorID)
			}
			if strings.Contains(msg, `"errorCode"`) || strings.Contains(msg, "Kind") || !strings.HasSuffix(msg, ".") {
				t.Errorf("#%s = %q, want a plain sentence", tt.errorID, msg)
			}
			if got := tc.enrollmentCount(t); got != before {
				t.Errorf("%d enrollments after a refused form, want %d", got, before)
			}
			if !has(r.body, "form#enrollment-form") {
				t.Fatal("the form is not shown again")
			}
			// The form keeps what was typed.
			if id := tt.form.Get("registrationId"); !has(r.body, fmt.Sprintf("input#registration-id[value=%s]", id)) {
				t.Errorf("the registration ID %q is not kept", id)
			}
			if twin := tt.form.Get("initialTwin"); !strings.Contains(r.body, templateEscape(twin)) {
				t.Errorf("the initial twin %q is not kept", twin)
			}
		})
	}
}

// templateEscape escapes text as html/template does in an element's body.
func templateEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;").Replace(s)
}

func TestEnrollmentList(t *testing.T) {
	tc := newTestConsole(t)
	for i := range 45 {
		tc.mustEnrollment(t, fmt.Sprintf("sensor-%02d", i))
	}
	tc.mustEnrollment(t, "gateway-1")
	tc.mustGroup(t, "fleet-a")
	tc.mustGroup(t, "fleet-b")
	b := tc.signedIn(t, tc.owner)
	rows := func(body string) []string {
		var ids []string
		for _, e := range allElements(body) {
			if id, ok := e.attrs["data-id"]; ok && e.tag == "tr" {
				ids = append(ids, id)
			}
		}
		return ids
	}
	tests := []struct {
		name       string
		query      string
		n          int    // rows
		prev, next bool   // paging links
		only       string // the first row expected, when not ""
	}{
		{"20 rows/first page", "", 20, false, true, ""},
		{"20 rows/second page", "?page=2", 20, true, true, ""},
		{"6 rows/last page", "?page=3", 6, true, false, ""},
		{"0 rows/past the end", "?page=9", 0, true, false, ""},
		{"20 rows/page not a number", "?page=x", 20, false, true, ""},
		{"1 row/part of the ID", "?filter=GATE", 1, false, false, "gateway-1"},
		{"5 rows/part of the ID, paged", "?filter=sensor-&page=3", 5, true, false, ""},
		{"1 row/a WHERE condition", "?filter=" + url.QueryEscape("WHERE registrationId = 'sensor-07'"), 1, false, false, "sensor-07"},
		{"2 rows/groups tab", "?tab=groups", 2, false, false, ""},
		{"1 row/groups filtered", "?tab=groups&filter=-b", 1, false, false, "fleet-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.get("/console/enrollments" + tt.query)
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			got := rows(r.body)
			if len(got) != tt.n {
				t.Fatalf("%d rows, want %d: %v", len(got), tt.n, got)
			}
			if tt.only != "" && got[0] != tt.only {
				t.Errorf("row %q, want %q", got[0], tt.only)
			}
			if has(r.body, "a#prev-page") != tt.prev || has(r.body, "a#next-page") != tt.next {
				t.Errorf("prev %v next %v, want %v %v", has(r.body, "a#prev-page"), has(r.body, "a#next-page"), tt.prev, tt.next)
			}
		})
	}
	t.Run("400/a condition the list does not understand", func(t *testing.T) {
		r := b.get("/console/enrollments?filter=" + url.QueryEscape("WHERE ((("))
		if r.status != http.StatusBadRequest || text(r.body, "filter-error") == "" {
			t.Errorf("status %d, #filter-error %q", r.status, text(r.body, "filter-error"))
		}
	})
	t.Run("next page link keeps the tab and filter", func(t *testing.T) {
		r := b.get("/console/enrollments?filter=sensor")
		next := elements(r.body, "id", "next-page")
		if len(next) != 1 {
			t.Fatal("no next page link")
		}
		u := mustURL(t, next[0].attrs["href"])
		if q := u.Query(); q.Get("filter") != "sensor" || q.Get("page") != "2" || q.Get("tab") != "individual" {
			t.Errorf("next page link %q", next[0].attrs["href"])
		}
	})
}

func TestDeleteEnrollment(t *testing.T) {
	tc := newTestConsole(t)
	tc.mustEnrollment(t, "doomed")
	b := tc.signedIn(t, tc.owner)
	page := b.get("/console/enrollments/doomed")
	form := elements(page.body, "id", "delete-enrollment")
	if len(form) != 1 {
		t.Fatal("no form#delete-enrollment")
	}
	r := b.submit(form[0].attrs["action"], nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d\n%s", r.status, r.body)
	}
	if !notFound(t, tc.dps, "doomed") {
		t.Error("the enrollment still exists")
	}
	list := b.get(r.header.Get("Location"))
	if !strings.Contains(html.UnescapeString(list.body), `"doomed" was deleted`) {
		t.Errorf("the list does not say what was deleted")
	}
	if r := b.submit(form[0].attrs["action"], nil); r.status != http.StatusNotFound {
		t.Errorf("deleting again: %d, want 404", r.status)
	}
}

func TestEnrollmentCalledNew(t *testing.T) {
	tc := newTestConsole(t)
	tc.mustEnrollment(t, "new")
	b := tc.signedIn(t, tc.owner)
	r := b.get("/console/enrollments")
	link := ""
	for _, e := range allElements(r.body) {
		if e.tag == "a" && strings.HasPrefix(e.attrs["href"], "/console/enrollments/") && strings.EqualFold(e.attrs["href"], "/console/enrollments/new") {
			link = e.attrs["href"]
		}
	}
	if link == "" || link == "/console/enrollments/new" {
		t.Fatalf("the enrollment called new links to %q, the add form", link)
	}
	if p := b.get(link); p.status != http.StatusOK || text(p.body, "detail-registration-id") != "new" {
		t.Errorf("GET %s: %d %q", link, p.status, text(p.body, "detail-registration-id"))
	}
}

func TestRights(t *testing.T) {
	tc := newTestConsole(t)
	tc.mustEnrollment(t, "dev-1")
	tc.mustGroup(t, "grp")
	putRegistration(t, tc, dps.Registration{RegistrationID: "dev-1", DeviceID: "dev-1", AssignedHub: "hub.usher.test", Status: dps.Assigned})
	putRegistration(t, tc, dps.Registration{RegistrationID: "m-1", GroupID: "grp", DeviceID: "m-1", AssignedHub: "hub.usher.test", Status: dps.Assigned})
	reader := tc.signedIn(t, tc.policy(t, "reader", access.EnrollmentRead|access.RegistrationStatusRead))

	t.Run("reader sees no Add, Delete or Save", func(t *testing.T) {
		pages := map[string][]string{
			"/console/enrollments":            {"a#add-individual", "a#add-group"},
			"/console/enrollments?tab=groups": {"a#add-individual", "a#add-group"},
			"/console/enrollments/dev-1":      {"form#delete-enrollment", "form.delete-registration"},
			"/console/groups/grp":             {"form#delete-group", "form.delete-registration"},
		}
		for path, absent := range pages {
			r := reader.get(path)
			if r.status != http.StatusOK {
				t.Errorf("%s: %d", path, r.status)
			}
			for _, sel := range absent {
				if has(r.body, sel) {
					t.Errorf("%s has %s for a policy without the right", path, sel)
				}
			}
			if strings.Contains(r.body, ">Delete") || strings.Contains(r.body, ">Save<") || strings.Contains(r.body, ">Add ") {
				t.Errorf("%s has a write button", path)
			}
		}
		if r := reader.get("/console/enrollments/dev-1"); !has(r.body, `tr[data-registration-id=dev-1]`) || !has(r.body, "#primary-key-value") {
			t.Errorf("the reader does not see the record or the keys")
		}
	})
	posts := []struct {
		name, path string
		form       url.Values
		missing    string
	}{
		{"403/add individual enrollment", "/console/enrollments/new", enrollmentForm("reader-post"), "EnrollmentWrite"},
		{"403/add enrollment group", "/console/groups/new", with(enrollmentForm(""), "groupName", "reader-group"), "EnrollmentWrite"},
		{"403/delete enrollment", "/console/enrollments/dev-1/delete", nil, "EnrollmentWrite"},
		{"403/delete group", "/console/groups/grp/delete", nil, "EnrollmentWrite"},
		{"403/delete an enrollment's registration", "/console/enrollments/dev-1/registration/delete", nil, "RegistrationStatusWrite"},
		{"403/delete a group's registration", "/console/groups/grp/registrations/m-1/delete", nil, "RegistrationStatusWrite"},
	}
	for _, tt := range posts {
		t.Run(tt.name, func(t *testing.T) {
			r := reader.submit(tt.path, tt.form)
			if r.status != http.StatusForbidden {
				t.Fatalf("status %d, want 403", r.status)
			}
			if msg := text(r.body, "error-message"); !strings.Contains(msg, tt.missing) {
				t.Errorf("the 403 page says %q, want it to name %s", msg, tt.missing)
			}
		})
	}
	t.Run("nothing changed", func(t *testing.T) {
		ctx := context.Background()
		if notFound(t, tc.dps, "dev-1") || !notFound(t, tc.dps, "reader-post") {
			t.Error("an enrollment was created or deleted")
		}
		if _, err := tc.dps.Group(ctx, "grp"); err != nil {
			t.Error(err)
		}
		if _, err := tc.dps.Group(ctx, "reader-group"); err == nil {
			t.Error("the reader created a group")
		}
		for _, id := range []string{"dev-1", "m-1"} {
			if _, err := tc.dps.Registration(ctx, id); err != nil {
				t.Errorf("registration %s: %v", id, err)
			}
		}
	})
	gets := []struct {
		name    string
		rights  access.Rights
		path    string
		missing string
	}{
		{"403/add form without EnrollmentWrite", access.EnrollmentRead, "/console/enrollments/new", "EnrollmentWrite"},
		{"403/group form without EnrollmentWrite", access.EnrollmentRead, "/console/groups/new", "EnrollmentWrite"},
		{"403/list without EnrollmentRead", access.ServiceConfig, "/console/enrollments", "EnrollmentRead"},
		{"403/details without EnrollmentRead", access.ServiceConfig, "/console/enrollments/dev-1", "EnrollmentRead"},
		{"403/hub devices without ServiceConfig", access.EnrollmentRead, "/console/hub/devices", "ServiceConfig"},
		{"403/deployments without ServiceConfig", access.EnrollmentRead, "/console/hub/deployments", "ServiceConfig"},
	}
	for i, tt := range gets {
		t.Run(tt.name, func(t *testing.T) {
			b := tc.signedIn(t, tc.policy(t, fmt.Sprintf("p%d", i), tt.rights))
			r := b.get(tt.path)
			if r.status != http.StatusForbidden || !strings.Contains(text(r.body, "error-message"), tt.missing) {
				t.Errorf("status %d, message %q; want 403 naming %s", r.status, text(r.body, "error-message"), tt.missing)
			}
		})
	}
	t.Run("registrations hidden without RegistrationStatusRead", func(t *testing.T) {
		b := tc.signedIn(t, tc.policy(t, "enrollments-only", access.EnrollmentRead))
		r := b.get("/console/enrollments/dev-1")
		if r.status != http.StatusOK || has(r.body, "table#registrations") || !strings.Contains(r.body, "RegistrationStatusRead") {
			t.Errorf("status %d; the page should say records need RegistrationStatusRead", r.status)
		}
	})
	t.Run("a right removed applies at once", func(t *testing.T) {
		p := tc.policy(t, "shrinking", access.EnrollmentRead|access.EnrollmentWrite)
		b := tc.signedIn(t, p)
		if r := b.get("/console/enrollments"); !has(r.body, "a#add-individual") {
			t.Fatal("no Add link with EnrollmentWrite")
		}
		p.Rights = access.EnrollmentRead
		if err := tc.db.UpdatePolicy(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		if r := b.get("/console/enrollments"); has(r.body, "a#add-individual") {
			t.Error("the Add link is still there after EnrollmentWrite was removed")
		}
		if r := b.submit("/console/enrollments/new", enrollmentForm("late")); r.status != http.StatusForbidden {
			t.Errorf("POST after the right was removed: %d, want 403", r.status)
		}
	})
}
