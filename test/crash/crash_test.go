//go:build linux

// Package crash checks that a registration a device has seen "assigned"
// survives the server being killed with SIGKILL mid-burst (issue 3): the
// registration record and the hub device are there after a restart.
package crash

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	client := tlsClient(t, in.CAFile)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 500; i++ {
				id := fmt.Sprintf("dev-%d-%d", w, i)
				key, _ := sas.DeriveDeviceKey(group.Attestation.SymmetricKey.PrimaryKey, id)
				if register(ctx, client, in, id, key) {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}(w)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	cancel()
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d registrations acknowledged before the kill", len(acked))
	}

	// Restart on the same data and the same address, then check every
	// acknowledged registration and its hub device.
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
	t.Logf("%d acknowledged registrations survived SIGKILL", len(acked))
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
