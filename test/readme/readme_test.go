//go:build linux

// Package readme checks that the start command README.md gives a fresh user
// really starts Usher: it runs the command exactly as written, with only the
// environment pointing it at a temporary data directory and this package's
// own loopback address (127.0.0.3), and talks to the result over TLS.
package readme

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const host = "127.0.0.3"

// startCommand returns the first shell block under "## Two commands".
func startCommand(t *testing.T, readme string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "## Two commands")
	if !ok {
		t.Fatal(`README.md has no "## Two commands" section`)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("README.md's two-commands section has no ```sh block")
	}
	cmd, _, _ := strings.Cut(rest, "```")
	return strings.TrimSpace(cmd)
}

func TestReadmeStartCommand(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	command := startCommand(t, string(readme))
	if !strings.Contains(command, "serve") {
		t.Fatalf("the start command %q does not run usher serve", command)
	}
	dataDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "exec "+command)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"USHER_DATA_DIR="+dataDir,
		"USHER_HTTPS_ADDR="+host+":443",
		"USHER_MQTT_ADDR="+host+":8883",
		"USHER_HOSTNAME=localhost,"+host,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}()
	if err := waitBanner(stdout); err != nil {
		t.Fatalf("%q did not start Usher (%v); it needs root for port 443.\nstderr:\n%s", command, err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	var info map[string]string
	infoCmd := exec.CommandContext(ctx, "go", "run", "./cmd/usher", "info", "--json", "--data-dir", dataDir)
	infoCmd.Dir = root
	out, err := infoCmd.Output()
	if err != nil {
		t.Fatalf("usher info: %v %s", err, exitStderr(err))
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("usher info --json: %v\n%s", err, out)
	}
	for _, k := range []string{"idScope", "hostName", "httpsAddr", "mqttAddr", "serviceConnectionString", "hubHostName", "hubConnectionString", "caFile"} {
		if info[k] == "" {
			t.Errorf("usher info --json lacks %s: %s", k, out)
		}
	}
	ca, err := os.ReadFile(info["caFile"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + host + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS on %s:443: %v", host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}

	// SIGTERM reaches the server through `go run`'s process group.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		stopped = true
	case <-time.After(20 * time.Second):
		t.Fatalf("the server did not stop on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("no graceful shutdown in the log:\n%s", stderr.String())
	}
}

func waitBanner(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "SharedAccessKeyName=") {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
