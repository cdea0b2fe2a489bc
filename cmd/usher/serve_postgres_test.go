package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

// TestServeOnPostgres runs the server with --store postgres on a schema of
// its own, provisions a device through the CLI (enrollment over the service
// API, registration over the DPS device API, both HTTPS) and reads the
// registration and the hub device back, through the API and from the
// store directly (usher info).
func TestServeOnPostgres(t *testing.T) {
	url := pgtest.SchemaURL(t)
	s := startServerOn(t, url, "--hub-hostname", "hub.usher.test")

	key := provisionDevice(t, s, "pg-dev-1")
	var d struct {
		DeviceID       string
		Authentication struct {
			SymmetricKey struct{ PrimaryKey string }
		}
	}
	if err := json.Unmarshal([]byte(s.mustUsher(t, "hub", "device", "show", "--device-id", "pg-dev-1")), &d); err != nil {
		t.Fatal(err)
	}
	if d.DeviceID != "pg-dev-1" || d.Authentication.SymmetricKey.PrimaryKey != key {
		t.Errorf("hub device show = %+v, want pg-dev-1 with the enrollment's key", d)
	}
	reg := s.mustUsher(t, "enrollment", "registration", "show", "--enrollment-id", "pg-dev-1")
	if !strings.Contains(reg, `"assigned"`) {
		t.Errorf("registration show: want status assigned, got:\n%s", reg)
	}

	if _, err := os.Stat(filepath.Join(s.DataDir, dbFile)); !os.IsNotExist(err) {
		t.Errorf("--store postgres created %s in the data directory (stat: %v)", dbFile, err)
	}
	var info Info
	out := s.mustUsher(t, "info", "--json", "--store", "postgres", "--postgres-url", url)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if info != s.Info || info.IDScope == "" {
		t.Errorf("usher info --store postgres = %+v, want %+v", info, s.Info)
	}
}
