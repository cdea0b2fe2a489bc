// Package deploy_test checks the files in deploy/: the systemd unit passes
// `systemd-analyze verify` with a real usher binary in ExecStart, and that
// binary serves as an unprivileged user holding only CAP_NET_BIND_SERVICE,
// as the unit runs it. Missing prerequisites (systemd-analyze, setpriv, root,
// the go command) skip a test, and fail it when CI is set.
package deploy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/syncbuf"
)

// need skips the test when a prerequisite is missing, or fails it under CI.
func need(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("prerequisite missing (CI requires it): %s", what)
	}
	t.Skipf("prerequisite missing: %s", what)
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	need(t, err == nil, name+" on PATH")
	return p
}

// testVersion is stamped into the binary with -ldflags, as release builds do.
const testVersion = "v0.0.0-deploytest"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// usherBinary builds cmd/usher once, into a directory any user may read,
// with the release version stamp.
func usherBinary(t *testing.T) string {
	t.Helper()
	goCmd := lookPath(t, "go")
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "usher-deploy-"); buildErr != nil {
			return
		}
		if buildErr = os.Chmod(buildDir, 0o755); buildErr != nil {
			return
		}
		cmd := exec.Command(goCmd, "build", "-o", filepath.Join(buildDir, "usher"), "-ldflags", "-X main.version="+testVersion, "../cmd/usher")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New(err.Error() + ": " + string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building usher: %v", buildErr)
	}
	return filepath.Join(buildDir, "usher")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// shippedExecStart is the binary path deploy/usher.service names.
const shippedExecStart = "ExecStart=/usr/local/bin/usher "

// TestUnitVerifies runs `systemd-analyze verify` on deploy/usher.service
// with ExecStart pointing at a freshly built binary (verify insists it
// exists) and fails on anything it reports; a unit with a mistake shows the
// check can fail.
func TestUnitVerifies(t *testing.T) {
	analyze := lookPath(t, "systemd-analyze")
	bin := usherBinary(t)
	unit, err := os.ReadFile("usher.service")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(unit), shippedExecStart); n != 1 {
		t.Fatalf("usher.service has %d lines starting %q, want 1", n, shippedExecStart)
	}
	for _, want := range []string{
		"ExecStart=/usr/local/bin/usher serve --data-dir /var/lib/usher\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n", "Restart=on-failure\n", "EnvironmentFile=-/etc/usher/usher.env\n",
		"DynamicUser=yes\n", "StateDirectory=usher\n",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "ProtectHome=yes\n", "PrivateTmp=yes\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("usher.service lacks %q", strings.TrimSpace(want))
		}
	}
	local := strings.Replace(string(unit), shippedExecStart, "ExecStart="+bin+" ", 1)
	for _, tc := range []struct {
		name   string
		unit   string
		report string // "" for a clean verify
	}{
		{"ok/as shipped", local, ""},
		{"reported/unknown key", strings.Replace(local, "[Service]\n", "[Service]\nRestartt=always\n", 1), "Unknown key 'Restartt'"},
		{"reported/missing binary", strings.Replace(local, "ExecStart="+bin, "ExecStart="+bin+"-missing", 1), "is not executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "usher.service")
			if err := os.WriteFile(path, []byte(tc.unit), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, analyze, "verify", "--man=no", path).CombinedOutput()
			report := strings.TrimSpace(string(out))
			if tc.report == "" {
				if err != nil || report != "" {
					t.Fatalf("systemd-analyze verify: %v\n%s", err, report)
				}
				return
			}
			if !strings.Contains(report, tc.report) {
				t.Errorf("systemd-analyze verify reported %q (err %v), want %q", report, err, tc.report)
			}
		})
	}
}

// TestVersionStamp checks the -ldflags stamp release builds use.
func TestVersionStamp(t *testing.T) {
	out, err := exec.Command(usherBinary(t), "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "usher "+testVersion+" ") {
		t.Errorf("usher --version = %q (%v), want it to start with usher %s", out, err, testVersion)
	}
}

// The address this package's test may bind, port 443 and 8883 included.
const serveHost = "127.0.0.15"

// lockedBuffer collects output one goroutine writes while another reads it.
type lockedBuffer = syncbuf.Buffer

// TestServeUnprivileged runs the built binary as nobody:nogroup with only
// CAP_NET_BIND_SERVICE (ambient, and the only one in the bounding set), as
// the unit does, on a data directory that user owns: it binds 443 and 8883,
// serves HTTPS and MQTT over TLS, writes its files as that user, reloads on a
// real SIGHUP without stopping, and stops cleanly on SIGTERM. Without the
// capability it cannot bind 443.
func TestServeUnprivileged(t *testing.T) {
	need(t, os.Geteuid() == 0, "root (to switch to nobody with setpriv)")
	setpriv := lookPath(t, "setpriv")
	bin := usherBinary(t)
	const uid, gid = 65534, 65534 // nobody, nogroup

	newDataDir := func(t *testing.T) string {
		base, err := os.MkdirTemp("", "usher-unprivileged-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) })
		dir := filepath.Join(base, "data")
		for _, step := range []error{os.Chmod(base, 0o755), os.Mkdir(dir, 0o700), os.Chown(dir, uid, gid)} {
			if step != nil {
				t.Fatal(step)
			}
		}
		return dir
	}
	serveArgs := func(dir string) []string {
		return []string{bin, "serve", "--data-dir", dir, "--https-addr", serveHost + ":443", "--mqtt-addr", serveHost + ":8883", "--hostname", "dps.usher.test"}
	}
	asNobody := []string{"--reuid", "65534", "--regid", "65534", "--clear-groups"}

	t.Run("refused/without CAP_NET_BIND_SERVICE", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args := append(append(slices.Clone(asNobody), "--bounding-set", "-all", "--"), serveArgs(newDataDir(t))...)
		out, err := exec.CommandContext(ctx, setpriv, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied") {
			t.Fatalf("serve without the capability: %v\n%s", err, out)
		}
	})

	t.Run("ok/with CAP_NET_BIND_SERVICE only", func(t *testing.T) {
		dir := newDataDir(t)
		args := append(append(slices.Clone(asNobody), "--inh-caps", "-all,+net_bind_service", "--ambient-caps", "+net_bind_service", "--bounding-set", "-all,+net_bind_service", "--"), serveArgs(dir)...)
		cmd := exec.Command(setpriv, args...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := &lockedBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		banner := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			found := false
			for sc.Scan() {
				if !found && strings.Contains(sc.Text(), "SharedAccessKeyName=") {
					found = true
					banner <- true
				}
			}
			if !found {
				banner <- false
			}
			_, _ = io.Copy(io.Discard, stdout)
		}()
		select {
		case ok := <-banner:
			if !ok {
				t.Fatalf("usher serve ended before its banner; stderr:\n%s", stderr)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no banner within 30s; stderr:\n%s", stderr)
		}

		// The process is nobody with CAP_NET_BIND_SERVICE (bit 10) alone.
		status, err := os.ReadFile(filepathProc(cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "CapEff:\t0000000000000400", "CapBnd:\t0000000000000400"} {
			if !strings.Contains(string(status), want) {
				t.Errorf("/proc/%d/status lacks %q:\n%s", cmd.Process.Pid, want, status)
			}
		}

		roots := x509.NewCertPool()
		ca, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
		if err != nil || !roots.AppendCertsFromPEM(ca) {
			t.Fatalf("CA file: %v", err)
		}
		conf := &tls.Config{RootCAs: roots, ServerName: "dps.usher.test"}
		healthy := func() {
			t.Helper()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf.Clone()}}
			resp, err := c.Get("https://" + serveHost + "/healthz")
			if err != nil {
				t.Fatalf("GET /healthz on port 443: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("/healthz = %d", resp.StatusCode)
			}
			tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", serveHost+":8883", conf.Clone())
			if err != nil {
				t.Fatalf("TLS to MQTT on 8883: %v", err)
			}
			tc.Close()
		}
		healthy()

		// A real SIGHUP reloads the TLS material and stops nothing: with
		// the server certificate gone, the reload issues a new one.
		for _, f := range []string{"server.pem", "server-key.pem"} {
			if err := os.Remove(filepath.Join(dir, "tls", f)); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stderr.String(), "TLS certificate reloaded") {
			if time.Now().After(deadline) {
				t.Fatalf("no reload logged 10s after SIGHUP; stderr:\n%s", stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		healthy()

		// Everything it wrote, the re-issued certificate included, belongs
		// to the unprivileged user and the secrets to it alone.
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != uid || st.Gid != gid) {
				t.Errorf("%s is owned by %d:%d, want %d:%d", path, st.Uid, st.Gid, uid, gid)
			}
			secret := d.IsDir() || strings.Contains(d.Name(), "key") || strings.HasPrefix(d.Name(), "usher.db")
			if secret && fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v: group or others may read it", path, fi.Mode().Perm())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			stopped = true
			if err != nil {
				t.Errorf("usher serve exited with %v after SIGTERM; stderr:\n%s", err, stderr)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("usher serve did not stop within 20s of SIGTERM")
		}
	})
}

func filepathProc(pid int) string {
	return filepath.Join("/proc", strconv.Itoa(pid), "status")
}

// TestLoadBalancerConfigs checks the example HAProxy and nginx configs with
// the programs themselves (Debian: haproxy, nginx-light and
// libnginx-mod-stream, which scripts/test.sh and .ci/run install).
func TestLoadBalancerConfigs(t *testing.T) {
	t.Run("haproxy", func(t *testing.T) {
		bin := lookPath(t, "haproxy")
		if out, err := exec.Command(bin, "-c", "-f", "haproxy.cfg").CombinedOutput(); err != nil {
			t.Errorf("haproxy -c: %v\n%s", err, out)
		}
	})
	t.Run("nginx", func(t *testing.T) {
		bin := lookPath(t, "nginx")
		module := "/usr/lib/nginx/modules/ngx_stream_module.so"
		_, err := os.Stat(module)
		need(t, err == nil, "nginx's stream module ("+module+")")
		abs, err := filepath.Abs("nginx-stream.conf")
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		conf := "load_module " + module + ";\nevents {}\npid " + filepath.Join(dir, "nginx.pid") + ";\nerror_log " + filepath.Join(dir, "error.log") + ";\ninclude " + abs + ";\n"
		path := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-t", "-p", dir, "-c", path).CombinedOutput(); err != nil {
			t.Errorf("nginx -t: %v\n%s", err, out)
		}
	})
}
