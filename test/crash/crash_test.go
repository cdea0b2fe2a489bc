//go:build linux

// Package crash checks that a registration a device has seen "assigned"
// survives the server being killed with SIGKILL mid-burst (issues 3 and 7):
// the registration record and the hub device are there after a restart,
// none twice, the SQLite file passes its integrity check, and devices cut
// off by the kill succeed when they retry.
package crash

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/sas"

	_ "modernc.org/sqlite" // reads the killed server's file
)

type info struct {
	IDScope                 string `json:"idScope"`
	HTTPSAddr               string `json:"httpsAddr"`
	ServiceConnectionString string `json:"serviceConnectionString"`
	HubConnectionString     string `json:"hubConnectionString"`
	CAFile                  string `json:"caFile"`
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "usher")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/usher")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// start runs usher serve on dataDir and waits for its banner.
func start(t *testing.T, bin, dataDir, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--https-addr", addr, "--mqtt-addr", "127.0.0.1:0", "--hub-hostname", "hub.usher.test")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "SharedAccessKeyName=") {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return cmd
		}
	}
	t.Fatalf("usher serve did not start:\n%s", stderr.String())
	return nil
}

func usher(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("usher %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// burst is the load the server is killed under: enough concurrent
// registrations that SQLite's group commit has several in one transaction
// when the kill lands.
const (
	burstWorkers = 16
	killAfter    = 200 // acknowledged registrations before the kill
)

func TestAcknowledgedRegistrationsSurviveSIGKILL(t *testing.T) {
	bin := build(t)
	dataDir := t.TempDir()
	srv := start(t, bin, dataDir, "127.0.0.1:0")
	var in info
	if err := json.Unmarshal(usher(t, bin, "info", "--json", "--data-dir", dataDir), &in); err != nil {
		t.Fatal(err)
	}
	var group struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	if err := json.Unmarshal(usher(t, bin, "enrollment-group", "create", "--group-id", "burst", "--show-keys", "--data-dir", dataDir), &group); err != nil {
		t.Fatal(err)
	}
	keyOf := func(id string) string {
		key, _ := sas.DeriveDeviceKey(group.Attestation.SymmetricKey.PrimaryKey, id)
		return key
	}
	client := tlsClient(t, in.CAFile)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var acked, unacked []string
	var wg sync.WaitGroup
	for w := range burstWorkers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 2000; i++ {
				id := fmt.Sprintf("dev-%d-%d", w, i)
				ok := register(ctx, client, in, id, keyOf(id))
				mu.Lock()
				if ok {
					acked = append(acked, id)
				} else {
					unacked = append(unacked, id)
				}
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= killAfter || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	cancel()
	wg.Wait()
	if len(acked) < killAfter/2 {
		t.Fatalf("only %d registrations acknowledged before the kill", len(acked))
	}

	// The killed server's file, opened as the next start will open it.
	st := inspect(t, filepath.Join(dataDir, "usher.db"))
	for _, id := range acked {
		if st.records[strings.ToLower(id)] != "assigned" {
			t.Errorf("acknowledged registration %s: record status %q after SIGKILL", id, st.records[strings.ToLower(id)])
		}
		if st.devices[strings.ToLower(id)] != 1 {
			t.Errorf("acknowledged registration %s: %d hub devices after SIGKILL, want 1", id, st.devices[strings.ToLower(id)])
		}
	}

	// Restart on the same data and the same address: every acknowledged
	// registration and its hub device are served, and the devices whose
	// registrations were cut off retry and succeed, each still one device.
	srv = start(t, bin, dataDir, in.HTTPSAddr)
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	for _, id := range acked {
		if got := get(t, client, in, in.ServiceConnectionString, "/registrations/"+id+"?api-version=2021-10-01"); got["status"] != "assigned" {
			t.Errorf("acknowledged registration %s lost after SIGKILL: %v", id, got)
		}
		if got := get(t, client, in, in.HubConnectionString, "/devices/"+id+"?api-version=2021-04-12"); got["deviceId"] != id {
			t.Errorf("hub device %s lost after SIGKILL: %v", id, got)
		}
	}
	retried := 0
	for _, id := range unacked {
		if !register(context.Background(), client, in, id, keyOf(id)) {
			t.Errorf("device %s, cut off by the kill, could not register after the restart", id)
		}
		retried++
	}
	_ = srv.Process.Signal(syscall.SIGTERM)
	_ = srv.Wait()
	after := inspect(t, filepath.Join(dataDir, "usher.db"))
	for _, id := range append(acked, unacked...) {
		if n := after.devices[strings.ToLower(id)]; n != 1 {
			t.Errorf("device %s: %d hub devices after the retries, want exactly 1", id, n)
		}
	}
	t.Logf("SIGKILL after %d acknowledged registrations (%d workers): %d/%d acknowledged found with record and hub device; "+
		"at the kill the store held %d records and %d hub devices (in-flight work committed or not, never half); "+
		"%d cut-off devices retried after restart and succeeded; integrity_check ok before and after",
		len(acked), burstWorkers, countFound(st, acked), len(acked), len(st.records), st.deviceRows, retried)
}

// storeState is what a SQLite file holds, read directly.
type storeState struct {
	records    map[string]string // registration ID (lower case) → status
	devices    map[string]int    // device ID (lower case) → hub device rows
	deviceRows int
}

// inspect opens the database file as a new process would (recovering the
// WAL), runs SQLite's integrity and foreign-key checks, and reads every
// registration record and hub device. Every assigned record must have its
// hub device: the device is committed before the record.
func inspect(t *testing.T, path string) storeState {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}
	fk, err := db.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if fk.Next() {
		t.Error("foreign_key_check reports violations")
	}
	fk.Close()
	st := storeState{records: map[string]string{}, devices: map[string]int{}}
	rows, err := db.Query(`SELECT device_id FROM hub_devices`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		st.devices[strings.ToLower(id)]++
		st.deviceRows++
	}
	rows.Close()
	rows, err = db.Query(`SELECT id_key, body FROM registrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var key, body string
		if err := rows.Scan(&key, &body); err != nil {
			t.Fatal(err)
		}
		var rec struct{ DeviceID, Status string }
		if err := json.Unmarshal([]byte(body), &rec); err != nil {
			t.Fatalf("registration %s: undecodable body: %v", key, err)
		}
		st.records[strings.ToLower(key)] = rec.Status
		if rec.Status == "assigned" && st.devices[strings.ToLower(rec.DeviceID)] != 1 {
			t.Errorf("registration %s is assigned but its hub device %s is not there exactly once", key, rec.DeviceID)
		}
	}
	return st
}

func countFound(st storeState, ids []string) int {
	n := 0
	for _, id := range ids {
		if st.records[strings.ToLower(id)] == "assigned" && st.devices[strings.ToLower(id)] == 1 {
			n++
		}
	}
	return n
}

// register runs PUT + poll and reports whether the device saw "assigned".
func register(ctx context.Context, c *http.Client, in info, id, key string) bool {
	tok, _ := sas.SignKey(in.IDScope+"/registrations/"+id, "registration", key, time.Now().Add(time.Hour))
	base := "https://" + in.HTTPSAddr + "/" + in.IDScope + "/registrations/" + id
	var op struct{ OperationID, Status string }
	if !call(ctx, c, "PUT", base+"/register?api-version=2019-03-31", tok, `{"registrationId":"`+id+`"}`, &op) || op.OperationID == "" {
		return false
	}
	return call(ctx, c, "GET", base+"/operations/"+op.OperationID+"?api-version=2019-03-31", tok, "", &op) && op.Status == "assigned"
}

func call(ctx context.Context, c *http.Client, method, url, tok, body string, v any) bool {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode < 300 && json.NewDecoder(resp.Body).Decode(v) == nil
}

func get(t *testing.T, c *http.Client, in info, connStr, path string) map[string]any {
	t.Helper()
	cs, err := sas.ParseConnectionString(connStr)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := sas.SignKey(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	var out map[string]any
	call(context.Background(), c, "GET", "https://"+in.HTTPSAddr+path, tok, "", &out)
	return out
}

func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
}
