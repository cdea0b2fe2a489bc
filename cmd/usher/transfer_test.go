package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/transfer"
	"github.com/usher-iot/usher/internal/wire"
)

// serviceClient is a DPS service client of the test server.
func (s *testServer) serviceClient(t testing.TB) *client.Client {
	t.Helper()
	cs, err := sas.ParseConnectionString(s.Info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := localAddr(s.Info.HTTPSAddr)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cs, client.Options{CAFile: s.Info.CAFile, Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.CloseIdleConnections)
	return cl
}

// testKey is a deterministic 32-byte base64 key.
func testKey(seed string) string {
	b := []byte(fmt.Sprintf("%-32.32s", "key-"+seed))
	return base64.StdEncoding.EncodeToString(b)
}

// fleetEnrollment is the i-th enrollment of a test fleet: tags, twin
// properties, IoT Edge, disabled ones, device IDs, given or generated keys.
func fleetEnrollment(i int) wire.IndividualEnrollment {
	e := wire.IndividualEnrollment{RegistrationID: fmt.Sprintf("dev-%05d", i)}
	e.Attestation = &wire.AttestationMechanism{Type: "symmetricKey"}
	if i%2 == 0 {
		p, s := testKey(fmt.Sprintf("p%d", i)), testKey(fmt.Sprintf("s%d", i))
		e.Attestation.SymmetricKey = &wire.SymmetricKeyAttestation{PrimaryKey: &p, SecondaryKey: &s}
	}
	e.Capabilities = &wire.Capabilities{IoTEdge: i%5 == 0}
	if i%11 == 0 {
		e.ProvisioningStatus = "disabled"
	}
	if i%3 == 0 {
		e.DeviceID = fmt.Sprintf("device-%d", i)
	}
	if i%4 != 1 {
		e.InitialTwin = &wire.InitialTwin{
			Tags:       map[string]any{"site": fmt.Sprintf("s%d", i%7), "n": json.Number(fmt.Sprint(i)), "nested": map[string]any{"a": []any{true, "x"}}},
			Properties: &wire.InitialTwinProperties{Desired: map[string]any{"interval": json.Number(fmt.Sprint(30 + i%10)), "ratio": json.Number("0.25")}},
		}
	}
	return e
}

// fleetGroup is the i-th enrollment group of a test fleet.
func fleetGroup(i int) wire.EnrollmentGroup {
	g := wire.EnrollmentGroup{EnrollmentGroupID: fmt.Sprintf("group-%03d", i)}
	g.Attestation = &wire.AttestationMechanism{Type: "symmetricKey"}
	if i%2 == 1 {
		p, s := testKey(fmt.Sprintf("gp%d", i)), testKey(fmt.Sprintf("gs%d", i))
		g.Attestation.SymmetricKey = &wire.SymmetricKeyAttestation{PrimaryKey: &p, SecondaryKey: &s}
	}
	g.Capabilities = &wire.Capabilities{IoTEdge: i%3 == 0}
	if i%4 == 0 {
		g.ProvisioningStatus = "disabled"
	}
	g.InitialTwin = &wire.InitialTwin{Tags: map[string]any{"site": fmt.Sprintf("s%d", i%7), "line": json.Number(fmt.Sprint(i))}}
	return g
}

// seedFleet creates enrollments and groups on s through bulk creates, a few
// requests in flight.
func seedFleet(t testing.TB, s *testServer, enrollments, groups int) {
	t.Helper()
	cl := s.serviceClient(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 8)
	batch := func(fn func() (wire.BulkResult, error)) {
		defer wg.Done()
		defer func() { <-sem }()
		res, err := fn()
		if err == nil && !res.IsSuccessful {
			err = fmt.Errorf("bulk create: %+v", res.Errors)
		}
		if err != nil {
			select {
			case errs <- err:
			default:
			}
		}
	}
	for i := 0; i < enrollments; i += 10 {
		op := wire.BulkEnrollmentOperation{Mode: "create"}
		for j := i; j < min(i+10, enrollments); j++ {
			op.Enrollments = append(op.Enrollments, fleetEnrollment(j))
		}
		sem <- struct{}{}
		wg.Add(1)
		go batch(func() (wire.BulkResult, error) { return cl.BulkEnrollments(ctx, op) })
	}
	for i := 0; i < groups; i += 10 {
		op := wire.BulkEnrollmentGroupOperation{Mode: "create"}
		for j := i; j < min(i+10, groups); j++ {
			op.EnrollmentGroups = append(op.EnrollmentGroups, fleetGroup(j))
		}
		sem <- struct{}{}
		wg.Add(1)
		go batch(func() (wire.BulkResult, error) { return cl.BulkGroups(ctx, op) })
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// usherIn runs a CLI command against s with stdin.
func (s *testServer) usherIn(t testing.TB, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "USHER_DATA_DIR" {
			return s.DataDir
		}
		return ""
	}
	err := run(context.Background(), args, getenv, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// export runs `usher enrollment export` with args and returns its output.
func (s *testServer) export(t testing.TB, args ...string) string {
	t.Helper()
	return s.mustUsher(t, append([]string{"enrollment", "export"}, args...)...)
}

// importLines runs `usher enrollment import` with stdin and returns the
// summary and the command's error.
func (s *testServer) importLines(t testing.TB, stdin string, args ...string) (transfer.Summary, string, error) {
	t.Helper()
	out, errOut, err := s.usherIn(t, stdin, append([]string{"enrollment", "import"}, args...)...)
	var sum transfer.Summary
	if jerr := json.Unmarshal([]byte(out), &sum); jerr != nil {
		t.Fatalf("import printed no JSON summary (%v): %q\nstderr: %s\nerr: %v", jerr, out, errOut, err)
	}
	return sum, errOut, err
}

type counts struct{ created, updated, unchanged, failed int }

func countsOf(s transfer.Summary) counts {
	return counts{s.Created, s.Updated, s.Unchanged, s.Failed}
}

func lineCount(s string) int { return strings.Count(s, "\n") }

// firstDiff describes where two exports first differ.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < min(len(al), len(bl)); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(al), len(bl))
}

// TestTransferRoundTrip10000 exports 10,000 records (9,900 enrollments, 100
// groups), imports them into an empty server and exports that: the exports
// are identical, with and without keys. Under the race detector, which makes
// it take five minutes, it moves 2,000 (1,980 and 20) instead.
func TestTransferRoundTrip10000(t *testing.T) {
	enrollments, groups := 9_900, 100
	if raceDetector {
		enrollments, groups = 1_980, 20
	}
	src := startServer(t)
	seedFleet(t, src, enrollments, groups)

	for _, keys := range []bool{false, true} {
		t.Run(fmt.Sprintf("keys=%v", keys), func(t *testing.T) {
			var args []string
			if keys {
				args = append(args, "--include-keys")
			}
			start := time.Now()
			first := src.export(t, args...)
			exportTook := time.Since(start)
			if n := lineCount(first); n != enrollments+groups {
				t.Fatalf("export has %d lines, want %d", n, enrollments+groups)
			}
			if strings.Contains(first, `"etag"`) || strings.Contains(first, "createdDateTimeUtc") || strings.Contains(first, "registrationState") {
				t.Errorf("export carries server-assigned members")
			}
			if got := strings.Contains(first, "primaryKey"); got != keys {
				t.Errorf("export carries keys = %v, want %v", got, keys)
			}

			dst := startServer(t)
			start = time.Now()
			sum, errOut, err := dst.importLines(t, first)
			importTook := time.Since(start)
			if err != nil {
				t.Fatalf("import: %v\n%s", err, errOut)
			}
			if got, want := countsOf(sum), (counts{created: enrollments + groups}); got != want {
				t.Fatalf("import counts %+v, want %+v", got, want)
			}
			second := dst.export(t, args...)
			if first != second {
				t.Fatalf("export → import → export differs at %s", firstDiff(first, second))
			}
			t.Logf("%d records: export %.1f s, import %.1f s (keys=%v)", enrollments+groups, exportTook.Seconds(), importTook.Seconds(), keys)

			if keys {
				// Re-importing with keys costs two requests a record
				// (the record and its keys); the keyless pass below
				// checks the whole file, this one a changed line.
				lines := strings.SplitAfter(first, "\n")
				changed := strings.Replace(lines[groups+1], `"provisioningStatus":"enabled"`, `"provisioningStatus":"disabled"`, 1)
				if changed == lines[groups+1] {
					t.Fatalf("line %d has no enabled status to change: %s", groups+2, changed)
				}
				sum, errOut, err = dst.importLines(t, lines[groups]+changed)
				if err != nil {
					t.Fatalf("import of a changed line: %v\n%s", err, errOut)
				}
				if got, want := countsOf(sum), (counts{updated: 1, unchanged: 1}); got != want {
					t.Fatalf("import of a changed line: counts %+v, want %+v", got, want)
				}
				return
			}
			start = time.Now()
			sum, errOut, err = dst.importLines(t, first)
			if err != nil {
				t.Fatalf("re-import: %v\n%s", err, errOut)
			}
			if got, want := countsOf(sum), (counts{unchanged: enrollments + groups}); got != want {
				t.Fatalf("re-import counts %+v, want %+v", got, want)
			}
			t.Logf("re-import (all unchanged) %.1f s", time.Since(start).Seconds())
		})
	}
}

// line renders a record as an import line.
func line(t testing.TB, r transfer.Record) string {
	t.Helper()
	b, err := r.MarshalLine()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func enrollmentLine(t testing.TB, id, site string, key string) string {
	t.Helper()
	e := wire.IndividualEnrollment{RegistrationID: id}
	e.Attestation = &wire.AttestationMechanism{Type: "symmetricKey"}
	if key != "" {
		e.Attestation.SymmetricKey = &wire.SymmetricKeyAttestation{PrimaryKey: &key, SecondaryKey: &key}
	}
	e.InitialTwin = &wire.InitialTwin{Tags: map[string]any{"site": site}}
	return line(t, transfer.EnrollmentRecord(e))
}

// exists reports whether the target holds an enrollment.
func exists(t testing.TB, cl *client.Client, id string) bool {
	t.Helper()
	_, err := cl.Enrollment(context.Background(), id)
	var apiErr *client.APIError
	if errorsAs(err, &apiErr) && apiErr.Status == 404 {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func attestedPrimaryKey(t testing.TB, cl *client.Client, id string) string {
	t.Helper()
	a, err := cl.EnrollmentAttestation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return *a.SymmetricKey.PrimaryKey
}

func TestImportOutcomes(t *testing.T) {
	keyA, keyB := testKey("a"), testKey("b")
	x509Line := `{"version":1,"kind":"enrollment","enrollment":{"registrationId":"cert-1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"MIIB"}}}}}}` + "\n"
	var many strings.Builder
	for i := 0; i < 250; i++ {
		many.WriteString(enrollmentLine(t, fmt.Sprintf("bulk-%03d", i), "x", ""))
	}
	type failure struct {
		line   int
		reason string
	}
	tests := []struct {
		name       string
		args       []string
		input      string
		want       counts
		failures   []failure
		rolledBack int // records the rollback put back
		wantErr    string
		present    []string // enrollments the target holds afterwards
		absent     []string
		preKey     string // pre-1's primary key afterwards
		preSite    string // pre-1's site tag afterwards
	}{
		{
			name: "ok/created, updated, unchanged; keys kept or generated",
			input: enrollmentLine(t, "new-1", "a", "") + // created, generated keys
				enrollmentLine(t, "pre-1", "b", "") + // updated, keys kept
				enrollmentLine(t, "pre-2", "a", keyA), // unchanged
			want:    counts{created: 1, updated: 1, unchanged: 1},
			present: []string{"new-1"}, preKey: keyA, preSite: "b",
		},
		{
			name: "failed/bad lines reported with numbers, the rest imported",
			input: enrollmentLine(t, "new-1", "a", "") +
				"{not json\n" +
				`{"version":1,"kind":"device","device":{}}` + "\n" +
				enrollmentLine(t, "bad id!", "a", "") +
				"\n" +
				enrollmentLine(t, "new-2", "a", "") +
				`{"version":2,"kind":"enrollment","enrollment":{"registrationId":"v2"}}` + "\n" +
				`{"kind":"enrollment","enrollment":{"registrationId":"no-attestation"}}` + "\n",
			want: counts{created: 2, failed: 5},
			failures: []failure{
				{2, "not a JSON object"}, {3, `unknown kind "device"`}, {4, `registrationId "bad id!" contains " "`},
				{7, "format version 2 is not supported"}, {8, "has no attestation type"},
			},
			wantErr: "5 of 7 records failed",
			present: []string{"new-1", "new-2"}, preKey: keyA, preSite: "a",
		},
		{
			name:     "failed/the server's refusal is reported, the rest imported",
			input:    enrollmentLine(t, "new-1", "a", "") + x509Line,
			want:     counts{created: 1, failed: 1},
			failures: []failure{{2, `attestation type "x509" is not supported`}},
			wantErr:  "1 of 2 records failed",
			present:  []string{"new-1"}, absent: []string{"cert-1"}, preKey: keyA, preSite: "a",
		},
		{
			name:  "atomic/a bad line writes nothing",
			args:  []string{"--atomic"},
			input: enrollmentLine(t, "new-1", "a", "") + enrollmentLine(t, "pre-1", "b", keyB) + "{not json\n",
			want:  counts{failed: 1}, failures: []failure{{3, "not a JSON object"}},
			wantErr: "nothing was written",
			absent:  []string{"new-1"}, preKey: keyA, preSite: "a",
		},
		{
			name:  "atomic/a refusal rolls back creates and updates",
			args:  []string{"--atomic"},
			input: enrollmentLine(t, "pre-1", "b", keyB) + many.String() + x509Line,
			want:  counts{created: 250, updated: 1, failed: 1}, failures: []failure{{252, `attestation type "x509" is not supported`}},
			rolledBack: 251,
			wantErr:    "rolled back",
			absent:     []string{"bulk-000", "bulk-249", "cert-1"}, preKey: keyA, preSite: "a",
		},
		{
			name:   "dry-run/reports and writes nothing",
			args:   []string{"--dry-run"},
			input:  enrollmentLine(t, "new-1", "a", "") + enrollmentLine(t, "pre-1", "b", keyB) + enrollmentLine(t, "pre-2", "a", keyA),
			want:   counts{created: 1, updated: 1, unchanged: 1},
			absent: []string{"new-1"}, preKey: keyA, preSite: "a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t)
			cl := s.serviceClient(t)
			_, errOut, err := s.importLines(t, enrollmentLine(t, "pre-1", "a", keyA)+enrollmentLine(t, "pre-2", "a", keyA))
			if err != nil {
				t.Fatalf("seed: %v\n%s", err, errOut)
			}
			in := filepath.Join(t.TempDir(), "in.jsonl")
			if err := os.WriteFile(in, []byte(tt.input), 0o600); err != nil {
				t.Fatal(err)
			}
			before := s.export(t, "--include-keys")
			// stdin for all but the atomic cases, which read a file and
			// stdin (spooled) in turn.
			sum, errOut, err := s.importLines(t, tt.input, tt.args...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("import: %v\n%s", err, errOut)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("import error = %v, want one containing %q", err, tt.wantErr)
			}
			if got := countsOf(sum); got != tt.want {
				t.Errorf("counts %+v, want %+v; failures %+v", got, tt.want, sum.Failures)
			}
			if len(sum.Failures) != len(tt.failures) {
				t.Fatalf("failures %+v, want %d", sum.Failures, len(tt.failures))
			}
			for i, f := range tt.failures {
				if got := sum.Failures[i]; got.Line != f.line || !strings.Contains(got.Reason, f.reason) {
					t.Errorf("failure %d = line %d %q, want line %d with %q", i, got.Line, got.Reason, f.line, f.reason)
				}
			}
			if sum.RolledBack != (tt.rolledBack > 0) || sum.Undone != tt.rolledBack {
				t.Errorf("rolledBack %v, undone %d; want %d undone", sum.RolledBack, sum.Undone, tt.rolledBack)
			}
			for _, id := range tt.present {
				if !exists(t, cl, id) {
					t.Errorf("%s is missing on the target", id)
				}
			}
			for _, id := range tt.absent {
				if exists(t, cl, id) {
					t.Errorf("%s is on the target", id)
				}
			}
			if got := attestedPrimaryKey(t, cl, "pre-1"); got != tt.preKey {
				t.Errorf("pre-1 key %q, want %q", got, tt.preKey)
			}
			e, err := cl.Enrollment(context.Background(), "pre-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := e.InitialTwin.Tags["site"]; got != tt.preSite {
				t.Errorf("pre-1 site %v, want %q", got, tt.preSite)
			}
			if strings.HasPrefix(tt.name, "dry-run") || strings.Contains(tt.name, "writes nothing") || tt.rolledBack > 0 {
				if after := s.export(t, "--include-keys"); after != before {
					t.Errorf("the target changed: %s", firstDiff(before, after))
				}
			}
			// The same input from a file reads the same (atomic: no spool).
			if len(tt.args) > 0 {
				sum2, _, _ := s.importLines(t, "", append(tt.args, "--in", in)...)
				if got := countsOf(sum2); got != tt.want {
					t.Errorf("from --in: counts %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestExportWhere(t *testing.T) {
	s := startServer(t)
	seedFleet(t, s, 70, 14)
	out := s.export(t, "--where", "initialTwin.tags.site = 's3'")
	var enrollments, groups int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rec, err := transfer.ParseLine([]byte(l))
		if err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		var site any
		if rec.Enrollment != nil {
			enrollments++
			site = rec.Enrollment.InitialTwin.Tags["site"]
		} else {
			groups++
			site = rec.Group.InitialTwin.Tags["site"]
		}
		if site != "s3" {
			t.Errorf("exported %s %s has site %v", rec.Kind, rec.ID(), site)
		}
	}
	// Enrollments i%7 == 3 with a twin (i%4 != 1): 3, 10, 24, 31, 38, 52,
	// 59, 66 (17 and 45 have none); groups 3 and 10.
	if enrollments != 8 || groups != 2 {
		t.Errorf("exported %d enrollments and %d groups, want 8 and 2", enrollments, groups)
	}
	_, _, err := s.usher(t, "enrollment", "export", "--where", "deviceId = 'device-3'")
	if err == nil || !strings.Contains(err.Error(), "add --kind individual") {
		t.Errorf("export --where on an enrollment-only field: %v, want a hint at --kind", err)
	}
	if got := lineCount(s.export(t, "--kind", "individual", "--where", "deviceId = 'device-3'")); got != 1 {
		t.Errorf("--kind individual --where deviceId exported %d lines, want 1", got)
	}
	file := filepath.Join(t.TempDir(), "groups.jsonl")
	if out := s.export(t, "--kind", "group", "--include-keys", "--out", file); out != "" {
		t.Errorf("export --out wrote %q to stdout", out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export --out file: %v, %v; want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(file); lineCount(string(b)) != 14 || !strings.Contains(string(b), "primaryKey") {
		t.Errorf("export --out file has %d lines, want 14 with keys", lineCount(string(b)))
	}
	if got := lineCount(s.export(t, "--kind", "group")); got != 14 {
		t.Errorf("--kind group exported %d lines, want 14", got)
	}
	if got := lineCount(s.export(t, "--kind", "individual", "--where", "provisioningStatus = 'disabled'")); got != 7 {
		t.Errorf("disabled individual enrollments: %d lines, want 7", got)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestTransferHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"enrollment", "export", "--help"}, []string{"Examples:", "--where", "--include-keys", "--kind", "--out", `"version":1`, "byte-identical"}},
		{[]string{"enrollment", "import", "--help"}, []string{"Examples:", "--in", "--dry-run", "--atomic", "keeps the DPS's keys", "line", "undone"}},
		{[]string{"migrate", "--help"}, []string{"Examples:", "--from", "--to", "--from-address", "--to-ca-file", "--state", "resumes", "usher-migrate-<from"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:len(tt.args)-1], " "), func(t *testing.T) {
			out, _, err := usherWith(t, nil, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}
