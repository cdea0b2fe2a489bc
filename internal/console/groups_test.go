package console_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/sas"
)

func TestAddGroupAndDeriveKey(t *testing.T) {
	tc := newTestConsole(t)
	b := tc.signedIn(t, tc.owner)
	if r := b.get("/console/groups/new"); !has(r.body, "form#group-form") || !has(r.body, "input#group-name[name=groupName]") || has(r.body, "input#device-id") {
		t.Fatalf("the group form: %d", r.status)
	}
	form := without(with(enrollmentForm(""), "groupName", "sensors", "iotEdge", "true",
		"initialTwin", `{"tags":{"environment":"test"}}`), "registrationId", "deviceId")
	r := b.submit("/console/groups/new", form)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/groups/sensors" {
		t.Fatalf("save: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	g, err := tc.dps.Group(context.Background(), "sensors")
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := base64.StdEncoding.DecodeString(g.Attestation.PrimaryKey); len(raw) != dps.GeneratedKeyBytes || !g.IoTEdge {
		t.Errorf("saved %+v", g)
	}
	page := b.get("/console/groups/sensors")
	for _, sel := range []string{"form#derive", "input#derive-registration-id[name=registrationId]", "button#derive-submit", "form#delete-group"} {
		if !has(page.body, sel) {
			t.Errorf("the group page has no %s", sel)
		}
	}
	if has(page.body, "output#derived-key") {
		t.Errorf("a key is shown before one is derived")
	}

	tests := []struct {
		name   string
		regID  string
		status int
	}{
		{"200/derived key", "sensor-042", http.StatusOK},
		{"200/derived key with a colon", "site:7", http.StatusOK},
		{"400/empty registration ID", "", http.StatusBadRequest},
		{"400/bad registration ID", "no spaces", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.submit("/console/groups/sensors/derive", url.Values{"registrationId": {tt.regID}})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d\n%s", r.status, tt.status, r.body)
			}
			if tt.status != http.StatusOK {
				if text(r.body, "derive-error") == "" || has(r.body, "output#derived-key") {
					t.Errorf("no #derive-error, or a key anyway")
				}
				return
			}
			want, err := sas.DeriveDeviceKey(g.Attestation.PrimaryKey, tt.regID)
			if err != nil {
				t.Fatal(err)
			}
			if got := text(r.body, "derived-key"); got != want {
				t.Errorf("output#derived-key = %q, want sas.DeriveDeviceKey = %q", got, want)
			}
		})
	}
	t.Run("409/group name taken", func(t *testing.T) {
		r := b.submit("/console/groups/new", with(form, "groupName", "SENSORS"))
		if r.status != http.StatusConflict || text(r.body, "group-name-error") == "" {
			t.Errorf("status %d, #group-name-error %q", r.status, text(r.body, "group-name-error"))
		}
	})
	t.Run("400/bad group name keeps the input", func(t *testing.T) {
		r := b.submit("/console/groups/new", with(form, "groupName", "bad name", "initialTwin", `{"tags":{"x":1}}`))
		if r.status != http.StatusBadRequest || text(r.body, "group-name-error") == "" || !has(r.body, "input#group-name[value=bad name]") {
			t.Errorf("status %d, #group-name-error %q", r.status, text(r.body, "group-name-error"))
		}
		if _, err := tc.dps.Group(context.Background(), "bad name"); err == nil {
			t.Error("saved")
		}
	})
	t.Run("303/delete group", func(t *testing.T) {
		r := b.submit("/console/groups/sensors/delete", nil)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/enrollments?deleted=sensors&tab=groups" {
			t.Fatalf("delete: %d %q", r.status, r.header.Get("Location"))
		}
		if _, err := tc.dps.Group(context.Background(), "sensors"); err == nil {
			t.Error("the group still exists")
		}
	})
}

func putRegistration(t testing.TB, tc *testConsole, r dps.Registration) {
	t.Helper()
	now := time.Now()
	r.Created, r.Updated, r.ETag = now, now, "etag-"+r.RegistrationID
	if err := tc.db.PutRegistration(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func TestRegistrationRecords(t *testing.T) {
	tc := newTestConsole(t)
	tc.mustEnrollment(t, "dev-1")
	tc.mustEnrollment(t, "dev-2")
	tc.mustGroup(t, "grp")
	tc.mustGroup(t, "other")
	putRegistration(t, tc, dps.Registration{RegistrationID: "dev-1", DeviceID: "device-one", AssignedHub: "hub.usher.test", Status: dps.Assigned})
	for i := range 3 {
		id := fmt.Sprintf("m-%d", i)
		putRegistration(t, tc, dps.Registration{RegistrationID: id, GroupID: "grp", DeviceID: id, AssignedHub: "hub.usher.test", Status: dps.Assigned})
	}
	putRegistration(t, tc, dps.Registration{RegistrationID: "dev-2", GroupID: "other", Status: dps.Failed, ErrorMessage: "Device not enabled."})
	b := tc.signedIn(t, tc.owner)

	t.Run("listed on the enrollment", func(t *testing.T) {
		r := b.get("/console/enrollments/dev-1")
		row := `tr[data-registration-id=dev-1]`
		if !has(r.body, "table#registrations") || !has(r.body, row) {
			t.Fatalf("no %s", row)
		}
		for _, want := range []string{"assigned", "hub.usher.test", "device-one"} {
			if !strings.Contains(r.body, "<td>"+want+"</td>") && !strings.Contains(r.body, ">"+want+"</td>") {
				t.Errorf("the record lacks %q", want)
			}
		}
		if !has(r.body, "form.delete-registration") {
			t.Errorf("no form.delete-registration")
		}
	})
	t.Run("a group's record is not the enrollment's", func(t *testing.T) {
		r := b.get("/console/enrollments/dev-2")
		if has(r.body, `tr[data-registration-id=dev-2]`) {
			t.Errorf("dev-2's record of group other is listed on individual enrollment dev-2")
		}
		if r := b.submit("/console/enrollments/dev-2/registration/delete", nil); r.status != http.StatusNotFound {
			t.Errorf("deleting it through the enrollment: %d, want 404", r.status)
		}
	})
	t.Run("listed on the group", func(t *testing.T) {
		r := b.get("/console/groups/grp")
		for i := range 3 {
			if !has(r.body, fmt.Sprintf("tr[data-registration-id=m-%d]", i)) {
				t.Errorf("m-%d is not listed", i)
			}
		}
		if has(r.body, "tr[data-registration-id=dev-2]") {
			t.Errorf("another group's record is listed")
		}
	})
	t.Run("404/delete through another group", func(t *testing.T) {
		if r := b.submit("/console/groups/other/registrations/m-0/delete", nil); r.status != http.StatusNotFound {
			t.Errorf("status %d, want 404", r.status)
		}
		if _, err := tc.dps.Registration(context.Background(), "m-0"); err != nil {
			t.Errorf("m-0 was deleted: %v", err)
		}
	})
	t.Run("303/delete", func(t *testing.T) {
		page := b.get("/console/groups/grp")
		var action string
		for _, e := range allElements(page.body) {
			if e.tag == "form" && e.attrs["class"] == "delete-registration" && strings.Contains(e.attrs["action"], "/m-1/") {
				action = e.attrs["action"]
			}
		}
		if action == "" {
			t.Fatal("no delete form for m-1")
		}
		r := b.submit(action, nil)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/groups/grp" {
			t.Fatalf("delete: %d %q", r.status, r.header.Get("Location"))
		}
		if _, err := tc.dps.Registration(context.Background(), "m-1"); err == nil {
			t.Error("m-1 still exists")
		}
		r = b.submit("/console/enrollments/dev-1/registration/delete", nil)
		if r.status != http.StatusSeeOther {
			t.Fatalf("delete dev-1's record: %d", r.status)
		}
		if after := b.get("/console/enrollments/dev-1"); has(after.body, "tr[data-registration-id=dev-1]") {
			t.Error("dev-1's record is still listed")
		}
	})
}
