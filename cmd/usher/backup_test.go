package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/deviceclient"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

// usherIn runs one CLI command with only the given environment.
func usherIn(t testing.TB, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// hubIdentity is what survives a restore of a provisioned device.
type hubIdentity struct {
	DeviceID     string `json:"deviceId"`
	GenerationID string `json:"generationId"`
	Auth         struct {
		SymmetricKey struct {
			PrimaryKey string `json:"primaryKey"`
		} `json:"symmetricKey"`
	} `json:"authentication"`
}

func showDevice(t *testing.T, s *testServer, id string) hubIdentity {
	t.Helper()
	var d hubIdentity
	if err := json.Unmarshal([]byte(s.mustUsher(t, "hub", "device", "show", "--device-id", id)), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func desired(t *testing.T, s *testServer, id string) string {
	t.Helper()
	var twin struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(s.mustUsher(t, "hub", "twin", "show", "--device-id", id)), &twin); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("tags %v, interval %v", twin.Tags, twin.Properties.Desired["interval"])
}

// registering provisions devices of a group one after another until the
// returned stop is called, which reports how many registered. It returns
// once the first few have.
func registering(t *testing.T, s *testServer, groupKey string) (stop func() int64) {
	t.Helper()
	pool, err := caPool(s.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer once.Do(func() { close(started) })
		for i := 0; ctx.Err() == nil; i++ {
			_, err := deviceclient.Register(ctx, deviceclient.Options{
				Endpoint: s.Info.HTTPSAddr, ServerName: s.Info.HostName, RootCAs: pool, IDScope: s.Info.IDScope,
				RegistrationID: fmt.Sprintf("busy-%05d", i), GroupKey: groupKey, MaxPollInterval: 50 * time.Millisecond,
			})
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("registration %d while backing up: %v", i, err)
				}
				return
			}
			if n.Add(1) == 5 {
				once.Do(func() { close(started) })
			}
		}
	}()
	<-started
	return func() int64 {
		cancel()
		wg.Wait()
		return n.Load()
	}
}

// backupRestore is the acceptance test of backup and restore on one store
// kind: a device is provisioned and its twin changed; devices of a group
// register in a loop while `usher backup` runs; the backup is restored into
// an empty target and a server started on it; the first device registers
// again with its key, through a client that trusts only the old CA, and
// gets the same hub device, generation and twin.
func backupRestore(t *testing.T, src, dst string) {
	const hubName = "hub.usher.test"
	s := startServerOn(t, src, "--hub-hostname", hubName)
	key := provisionDevice(t, s, "keep-dev", "--initial-twin-tags", `{"site":"a"}`)
	s.mustUsher(t, "hub", "twin", "update", "--device-id", "keep-dev", "--desired", `{"interval":42}`)
	before := showDevice(t, s, "keep-dev")
	beforeTwin := desired(t, s, "keep-dev")
	groupKey := createdKey(t, s, "enrollment-group", "create", "--group-id", "busy")

	stop := registering(t, s, groupKey)
	file := filepath.Join(t.TempDir(), "usher.tar.gz")
	start := time.Now()
	out := s.mustUsher(t, "backup", "--out", file)
	took := time.Since(start)
	n := stop()
	t.Logf("backup took %s while %d devices registered:\n%s", took, n, out)
	if !strings.Contains(out, "registrations") || !strings.Contains(out, "Backup of the") {
		t.Errorf("backup summary lacks the tables:\n%s", out)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %o, want 0600", st.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".usher-backup-*"))
	if len(leftovers) > 0 {
		t.Errorf("backup left %v behind", leftovers)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	env := map[string]string{}
	args := []string{"restore", "--in", file, "--data-dir", dir}
	if dst != "" {
		args = append(args, "--store", "postgres", "--postgres-url", dst)
	}
	out, errOut, err := usherIn(t, env, args...)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "Restored the") || !strings.Contains(out, "hub_devices") {
		t.Errorf("restore summary:\n%s", out)
	}

	if dst == "" {
		for _, name := range []string{dbFile, "tls/ca.pem", "tls/ca-key.pem", "tls/server.pem", "tls/server-rsa-key.pem"} {
			was, err := os.Stat(filepath.Join(s.DataDir, name))
			if err != nil {
				t.Fatal(err)
			}
			now, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("restored data directory: %v", err)
			}
			if now.Mode().Perm() != was.Mode().Perm() {
				t.Errorf("restored %s has mode %o, the original %o", name, now.Mode().Perm(), was.Mode().Perm())
			}
		}
	}
	s2 := startServerAt(t, dir, dst, "--hub-hostname", hubName)
	if s2.Info.IDScope != s.Info.IDScope {
		t.Errorf("restored ID scope %s, want %s", s2.Info.IDScope, s.Info.IDScope)
	}
	oldCA, err := os.ReadFile(s.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := os.ReadFile(s2.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(oldCA, newCA) {
		t.Errorf("the restored server's CA file differs from the original's")
	}
	// The device trusts only the old server's CA file.
	reg := s2.mustUsher(t, "device", "register", "--registration-id", "keep-dev", "--key", key, "--ca-file", s.Info.CAFile, "--data-dir", dir)
	if !strings.Contains(reg, `"deviceId": "keep-dev"`) || !strings.Contains(reg, `"status": "assigned"`) {
		t.Errorf("registration after restore:\n%s", reg)
	}
	if after := showDevice(t, s2, "keep-dev"); after != before {
		t.Errorf("hub device after restore and re-registration = %+v, want the same as before: %+v", after, before)
	}
	if got := desired(t, s2, "keep-dev"); got != beforeTwin {
		t.Errorf("twin after restore = %s, want %s", got, beforeTwin)
	}
	// Every registration the backup holds, taken while devices registered,
	// has its hub device and twin (written before the record): the backup
	// is the store as of one moment.
	var regs []struct {
		RegistrationID string `json:"registrationId"`
		DeviceID       string `json:"deviceId"`
		Status         string `json:"status"`
	}
	if err := json.Unmarshal([]byte(s2.mustUsher(t, "enrollment-group", "registration", "list", "--group-id", "busy")), &regs); err != nil {
		t.Fatal(err)
	}
	if len(regs) == 0 {
		t.Error("the backup holds none of the registrations made before it started")
	}
	for _, r := range regs {
		if r.Status != "assigned" {
			t.Errorf("restored registration %+v", r)
			continue
		}
		if d := showDevice(t, s2, r.DeviceID); d.DeviceID != r.DeviceID || d.GenerationID == "" {
			t.Errorf("restored registration %s: hub device %+v", r.RegistrationID, d)
		}
		desired(t, s2, r.DeviceID)
	}
	// A device of the group registered during the backup keeps its identity
	// if the snapshot holds it, or is provisioned afresh if not.
	s2.mustUsher(t, "device", "register", "--registration-id", "busy-00000", "--group-key", groupKey, "--data-dir", dir)
}

func TestBackupRestoreSQLite(t *testing.T) {
	backupRestore(t, "", "")
}

func TestBackupRestorePostgres(t *testing.T) {
	backupRestore(t, pgtest.SchemaURL(t), pgtest.SchemaURL(t))
}
