package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
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

func TestTransferRoundTrip10000(t *testing.T) {
	const enrollments, groups = 9_900, 100
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
