package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// testServer is an `usher serve` running in-process on 127.0.0.1:0 with its
// own data directory, over real TLS.
type testServer struct {
	DataDir string
	Store   storeLocation
	Info    Info
	Banner  string
	Stderr  *lockedBuffer // the server's log
}

// startServer runs `usher serve` with extra args and waits for its banner.
// The server stops when the test ends.
func startServer(t testing.TB, extra ...string) *testServer {
	t.Helper()
	return startServerOn(t, "", extra...)
}

// startServerOn is startServer on the PostgreSQL database at postgresURL
// (--store postgres), or on SQLite in the data directory when it is "".
func startServerOn(t testing.TB, postgresURL string, extra ...string) *testServer {
	t.Helper()
	dir := t.TempDir()
	loc := storeLocation{Kind: storeSQLite, DataDir: dir}
	if postgresURL != "" {
		loc = storeLocation{Kind: storePostgres, DataDir: dir, PostgresURL: postgresURL}
		extra = append([]string{"--store", storePostgres, "--postgres-url", postgresURL}, extra...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"serve", "--data-dir", dir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, extra...)
	pr, done, stderr := startRunLogged(ctx, args, noEnv)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("usher serve ended with %v; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Errorf("usher serve did not stop within 15s of its context ending")
		}
	})
	banner, err := readBanner(pr)
	if err != nil {
		t.Fatalf("usher serve did not start: %v; stderr:\n%s", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	info, err := readStoreInfo(context.Background(), loc)
	if err != nil {
		t.Fatalf("usher info: %v", err)
	}
	return &testServer{DataDir: dir, Store: loc, Info: info, Banner: banner, Stderr: stderr}
}

// readBanner reads stdout up to the connection string line, which the
// server prints once it is listening.
func readBanner(r io.Reader) (string, error) {
	var b strings.Builder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "SharedAccessKeyName=") {
			return b.String(), nil
		}
	}
	if err := sc.Err(); err != nil {
		return b.String(), err
	}
	return b.String(), io.ErrUnexpectedEOF
}

func noEnv(string) string { return "" }

// startRun runs a command in the background and returns its stdout and a
// channel that gets its result.
func startRun(ctx context.Context, args []string, getenv func(string) string) (io.Reader, <-chan error) {
	out, done, _ := startRunLogged(ctx, args, getenv)
	return out, done
}

func startRunLogged(ctx context.Context, args []string, getenv func(string) string) (io.Reader, <-chan error, *lockedBuffer) {
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, getenv, strings.NewReader(""), pw, stderr)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	return pr, done, stderr
}

// usher runs one CLI command against the test server's data directory and
// returns stdout, stderr and the error.
func (s *testServer) usher(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		switch k {
		case "USHER_DATA_DIR":
			return s.DataDir
		case "USHER_STORE":
			return s.Store.Kind
		case "USHER_POSTGRES_URL":
			return s.Store.PostgresURL
		}
		return ""
	}
	err := run(context.Background(), args, getenv, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustUsher is usher that fails the test on error.
func (s *testServer) mustUsher(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := s.usher(t, args...)
	if err != nil {
		t.Fatalf("usher %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}
