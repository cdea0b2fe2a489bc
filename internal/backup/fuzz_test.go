package backup

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

// FuzzUnpack feeds restore's reader arbitrary tar streams (gzip-compressed
// here, so mutations reach the tar and manifest parsing rather than dying
// at the gzip checksum). It must never panic, every refusal is an *Error,
// and an archive it accepts hands over only members the manifest lists,
// with valid names, in the manifest's order, whose content has the listed
// size and SHA-256.
func FuzzUnpack(f *testing.F) {
	archive, _ := packed(f)
	plain := gunzip(f, archive)
	f.Add(plain)
	f.Add(plain[:len(plain)/2])
	f.Add(bytes.Replace(plain, []byte(`"formatVersion":1`), []byte(`"formatVersion":9`), 1))
	f.Add(bytes.Replace(plain, []byte("usher.db"), []byte("../etc/x"), -1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, tarBytes []byte) {
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		_, _ = w.Write(tarBytes)
		_ = w.Close()
		var got []Member
		m, err := Unpack(&gz, func(mem Member, r io.Reader) error {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			if int64(len(b)) != mem.Size || hex.EncodeToString(sum[:]) != mem.SHA256 {
				mem.SHA256 = "" // checked below only for accepted archives
			}
			got = append(got, mem)
			return nil
		})
		if err != nil {
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("refusal %v (%T) is not a *backup.Error", err, err)
			}
			return
		}
		if len(got) != len(m.Members) {
			t.Fatalf("accepted archive handed over %d members, the manifest lists %d", len(got), len(m.Members))
		}
		for i, mem := range got {
			if mem.Name != m.Members[i].Name || !ValidName(mem.Name) {
				t.Fatalf("member %d is %q, manifest %q", i, mem.Name, m.Members[i].Name)
			}
			if mem.SHA256 == "" {
				t.Fatalf("accepted member %q does not have its listed size and SHA-256", mem.Name)
			}
		}
	})
}

func gunzip(tb testing.TB, b []byte) []byte {
	tb.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
