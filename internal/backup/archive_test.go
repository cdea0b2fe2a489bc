package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// packed returns an archive of two members and the files' contents.
func packed(t testing.TB) ([]byte, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"usher.db": strings.Repeat("database page ", 1000), "tls/ca.pem": "-----BEGIN CERTIFICATE-----\n"}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	m := Manifest{UsherVersion: "test", Store: StoreSQLite, Migrations: []string{"0001_init"}, CreatedAt: time.Unix(1700000000, 0).UTC(),
		Tables: []Table{{Name: "meta", Rows: 3}}}
	if err := Pack(&buf, m, dir, []string{"usher.db", "tls/ca.pem"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), files
}

// entry is one raw tar member for hand-made archives.
type entry struct {
	name string
	body []byte
}

// untar lists an archive's members.
func untar(t *testing.T, b []byte) []entry {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []entry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{hdr.Name, body})
	}
}

func retar(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range es {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: int64(len(e.body)), Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// editManifest rewrites the manifest's JSON with edit.
func editManifest(t *testing.T, es []entry, edit func(map[string]any)) []entry {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(es[0].body, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]entry(nil), es...)
	out[0] = entry{es[0].name, b}
	return out
}

func TestRoundTrip(t *testing.T) {
	b, files := packed(t)
	got := map[string]string{}
	m, err := Unpack(bytes.NewReader(b), func(mem Member, r io.Reader) error {
		body, err := io.ReadAll(r)
		got[mem.Name] = string(body)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, got); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	if m.FormatVersion != FormatVersion || m.Store != StoreSQLite || len(m.Members) != 2 || m.Members[0].Name != "usher.db" || m.Members[0].Mode != 0o600 || m.Tables[0].Rows != 3 {
		t.Errorf("manifest = %+v", m)
	}
	// A reader that reads nothing of a member still gets it checked.
	if _, err := Unpack(bytes.NewReader(b), func(Member, io.Reader) error { return nil }); err != nil {
		t.Errorf("Unpack reading nothing: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	good, _ := packed(t)
	es := untar(t, good)
	tampered := append([]entry(nil), es...)
	body := bytes.Clone(es[1].body)
	body[100] ^= 1
	tampered[1] = entry{es[1].name, body}
	var withCRCBroken = bytes.Clone(good)
	withCRCBroken[len(withCRCBroken)-6] ^= 0xff // the gzip trailer's CRC-32

	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"refused/empty file", nil, "not a gzip-compressed Usher backup"},
		{"refused/not gzip", []byte("hello, this is not a backup"), "not a gzip-compressed Usher backup"},
		{"refused/truncated in a member", good[:len(good)/2], "truncated"},
		{"refused/truncated at the end", good[:len(good)-4], "truncated"},
		{"refused/truncated in the header", good[:20], "truncated"},
		{"refused/gzip trailer damaged", withCRCBroken, "does not end cleanly"},
		{"refused/tampered member", retar(t, tampered), "usher.db does not match its checksum"},
		{"refused/future format version", retar(t, editManifest(t, es, func(m map[string]any) { m["formatVersion"] = FormatVersion + 1 })), "format version 2; this Usher reads format version 1 at most"},
		{"refused/not an usher manifest", retar(t, editManifest(t, es, func(m map[string]any) { m["format"] = "tarball" })), "not an Usher backup manifest"},
		{"refused/unknown store", retar(t, editManifest(t, es, func(m map[string]any) { m["store"] = "mysql" })), `store "mysql"`},
		{"refused/unknown manifest key", retar(t, editManifest(t, es, func(m map[string]any) { m["extra"] = 1 })), "does not decode"},
		{"refused/manifest not first", retar(t, []entry{es[1], es[0], es[2]}), `first member is "usher.db"`},
		{"refused/member missing", retar(t, es[:2]), "member 2 of 2 (tls/ca.pem) is missing"},
		{"refused/member out of order", retar(t, []entry{es[0], es[2], es[1]}), `member 1 is "tls/ca.pem"`},
		{"refused/extra member", retar(t, append(append([]entry(nil), es...), entry{"evil", []byte("x")})), `member "evil" is not in the manifest`},
		{"refused/member mode wider than 0644", retar(t, editManifest(t, es, func(m map[string]any) {
			m["members"].([]any)[0].(map[string]any)["mode"] = 0o4755
		})), `bad member "usher.db"`},
		{"refused/path escapes", retar(t, editManifest(t, es, func(m map[string]any) {
			m["members"].([]any)[0].(map[string]any)["name"] = "../usher.db"
		})), `bad member "../usher.db"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(tc.file))
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("Verify = %v, want an *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"usher.db": true, "tls/ca.pem": true, "postgres/meta.copy": true,
		"": false, "/etc/passwd": false, "../x": false, "..": false, "a/../b": false, "a//b": false, "./a": false,
		ManifestName: false, `a\b`: false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}
