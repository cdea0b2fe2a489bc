package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/sas"
)

func TestPolicyCommands(t *testing.T) {
	s := startServer(t)
	var created policyView
	if err := json.Unmarshal([]byte(s.mustUsher(t, "policy", "create", "reader", "--rights", "EnrollmentRead, registrationstatusread")), &created); err != nil {
		t.Fatal(err)
	}
	if strings.Join(created.Rights, ",") != "EnrollmentRead,RegistrationStatusRead" || created.PrimaryKey == "" {
		t.Fatalf("created policy: %+v", created)
	}
	call := func(method, path, key string) int {
		t.Helper()
		tok, err := sas.SignKey("localhost", "reader", key, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(method, "https://"+s.Info.HTTPSAddr+path+"?api-version=2021-10-01", strings.NewReader(`{"registrationId":"x","attestation":{"type":"symmetricKey"}}`))
		req.Header.Set("Authorization", tok)
		resp, err := caClient(t, s.Info.CAFile).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call("GET", "/enrollments/nobody", created.PrimaryKey); got != 404 {
		t.Errorf("reader GET = %d, want 404 (authorised, not found)", got)
	}
	if got := call("PUT", "/enrollments/x", created.PrimaryKey); got != 401 {
		t.Errorf("reader PUT = %d, want 401 (no EnrollmentWrite)", got)
	}

	var renewed policyView
	json.Unmarshal([]byte(s.mustUsher(t, "policy", "renew-key", "reader", "--key", "primary")), &renewed)
	if renewed.PrimaryKey == created.PrimaryKey || renewed.SecondaryKey != created.SecondaryKey {
		t.Errorf("renew-key primary: %+v", renewed)
	}
	if got := call("GET", "/enrollments/nobody", created.PrimaryKey); got != 401 {
		t.Errorf("the old primary key still works after renewal: %d", got)
	}
	if got := call("GET", "/enrollments/nobody", renewed.SecondaryKey); got != 404 {
		t.Errorf("secondary key = %d, want 404", got)
	}

	list := s.mustUsher(t, "policy", "list")
	if !strings.Contains(list, `"provisioningserviceowner"`) || !strings.Contains(list, `"reader"`) || strings.Contains(list, renewed.PrimaryKey) {
		t.Errorf("policy list: %s", list)
	}
	if hub := s.mustUsher(t, "policy", "list", "--hub"); !strings.Contains(hub, `"iothubowner"`) || strings.Contains(hub, "reader") {
		t.Errorf("policy list --hub: %s", hub)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"error/unknown right", []string{"policy", "create", "bad", "--rights", "EnrollmentRead,Everything"}, "Everything"},
		{"error/hub right on dps", []string{"policy", "create", "bad", "--rights", "RegistryRead"}, "RegistryRead"},
		{"error/duplicate", []string{"policy", "create", "reader", "--rights", "EnrollmentRead"}, "already exists"},
		{"error/owner delete", []string{"policy", "delete", "provisioningserviceowner"}, "owner"},
		{"error/unknown policy", []string{"policy", "show", "nobody"}, "does not exist"},
		{"error/bad name", []string{"policy", "create", "a b", "--rights", "EnrollmentRead"}, "policy name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := s.usher(t, tc.args...)
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Errorf("err %v, stderr %q, want a failure mentioning %q", err, errOut, tc.want)
			}
		})
	}
	s.mustUsher(t, "policy", "delete", "reader")
	if got := call("GET", "/enrollments/nobody", renewed.SecondaryKey); got != 401 {
		t.Errorf("a deleted policy still authenticates: %d", got)
	}
	if hubOwner := s.mustUsher(t, "policy", "show", "iothubowner", "--hub"); !strings.Contains(hubOwner, "RegistryWrite") {
		t.Errorf("iothubowner rights: %s", hubOwner)
	}
}
