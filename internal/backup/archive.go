// Package backup is the file format of `usher backup` and `usher restore`:
// a gzip-compressed tar archive whose first member, manifest.json, names the
// format version, the store it came from, its schema migrations, and the
// size and SHA-256 of every other member, in archive order. Readers check
// the manifest first and every member against it, so a truncated, damaged
// or edited archive is refused; the checksums detect accidents, not an
// attacker who can rewrite the manifest too (nothing is signed).
//
// The package knows nothing of the stores: callers stage the members as
// files (Pack) and receive them as streams (Verify, Unpack).
package backup

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// FormatVersion is the version of the archive layout this package writes
// and the newest it reads.
const FormatVersion = 1

// Format is the manifest's "format" value: what kind of file this is.
const Format = "usher-backup"

// ManifestName is the archive's first member.
const ManifestName = "manifest.json"

// The store kinds a manifest names.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// maxManifest bounds the manifest a reader accepts.
const maxManifest = 1 << 20

// Manifest describes an archive.
type Manifest struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"formatVersion"`
	UsherVersion  string    `json:"usherVersion"`
	Store         string    `json:"store"`      // StoreSQLite or StorePostgres
	Migrations    []string  `json:"migrations"` // schema migrations applied to the data, in order
	CreatedAt     time.Time `json:"createdAt"`
	Members       []Member  `json:"members"` // every member after the manifest, in archive order
	Tables        []Table   `json:"tables"`  // rows per table, for the summary
}

// Member is one file of the archive.
type Member struct {
	Name   string `json:"name"` // slash-separated, relative
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
	// Mode is the file's permission bits, at most 0644: restore never
	// makes a file more open than that, and keys stay 0600.
	Mode os.FileMode `json:"mode"`
}

// maxMode bounds the permissions a member carries.
const maxMode os.FileMode = 0o644

// Table is a table's row count.
type Table struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

// Error is a refused archive: the reason is meant for the operator.
type Error struct{ Reason string }

func (e *Error) Error() string { return "backup file refused: " + e.Reason }

func refuse(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// ValidName reports whether name may be a member name: relative, clean,
// slash-separated, no "..", not the manifest.
func ValidName(name string) bool {
	return name != "" && name != ManifestName && !strings.HasPrefix(name, "/") &&
		path.Clean(name) == name && !strings.HasPrefix(name, "../") && name != ".." &&
		!strings.ContainsAny(name, "\\\x00")
}

// Pack writes an archive to w: m (whose Members it fills) and then the
// files named by names, read from dir (names are slash-separated paths
// under dir). Every file is hashed before the archive is written, so the
// manifest can come first.
func Pack(w io.Writer, m Manifest, dir string, names []string) error {
	m.Format, m.FormatVersion = Format, FormatVersion
	m.Members = m.Members[:0]
	for _, name := range names {
		if !ValidName(name) {
			return fmt.Errorf("backup member name %q", name)
		}
		mem, err := hashFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return err
		}
		mem.Name = name
		m.Members = append(m.Members, mem)
	}
	head, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := writeMember(tw, ManifestName, int64(len(head)), 0o600, m.CreatedAt, strings.NewReader(string(head))); err != nil {
		return err
	}
	for _, mem := range m.Members {
		if err := copyFile(tw, filepath.Join(dir, filepath.FromSlash(mem.Name)), mem, m.CreatedAt); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func hashFile(p string) (Member, error) {
	f, err := os.Open(p)
	if err != nil {
		return Member{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Member{}, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Member{}, err
	}
	return Member{Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: st.Mode().Perm() & maxMode}, nil
}

// copyFile writes the staged file as a member, checking it still has the
// size it was hashed at.
func copyFile(tw *tar.Writer, p string, mem Member, at time.Time) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if err := writeMember(tw, mem.Name, mem.Size, mem.Mode, at, io.TeeReader(f, h)); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != mem.SHA256 {
		return fmt.Errorf("staged file %s changed while it was archived", mem.Name)
	}
	return nil
}

func writeMember(tw *tar.Writer, name string, size int64, mode os.FileMode, at time.Time, r io.Reader) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: int64(mode), ModTime: at, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("archive %s: %d bytes, expected %d", name, n, size)
	}
	return nil
}

// Verify reads a whole archive and checks it: the manifest (format and
// version), then every member's name, order, size and SHA-256, and that
// the archive ends where it should. It returns the manifest, or an *Error
// saying what is wrong.
func Verify(r io.Reader) (Manifest, error) {
	return Unpack(r, func(Member, io.Reader) error { return nil })
}

// Unpack reads an archive as Verify does, handing each member's content to
// fn as it is read (fn need not read it all). A member whose checksum does
// not match is reported after fn has seen it, so callers must treat what
// fn wrote as provisional until Unpack returns nil.
func Unpack(r io.Reader, fn func(Member, io.Reader) error) (Manifest, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return Manifest{}, refuse("not a gzip-compressed Usher backup (%v)", err)
	}
	tr := tar.NewReader(gz)
	m, err := readManifest(tr)
	if err != nil {
		return m, err
	}
	for i, want := range m.Members {
		hdr, err := tr.Next()
		if err != nil {
			return m, truncated(err, "member %d of %d (%s) is missing", i+1, len(m.Members), want.Name)
		}
		if hdr.Name != want.Name || hdr.Typeflag != tar.TypeReg {
			return m, refuse("member %d is %q, the manifest lists %q", i+1, hdr.Name, want.Name)
		}
		if hdr.Size != want.Size {
			return m, refuse("%s is %d bytes, the manifest says %d", want.Name, hdr.Size, want.Size)
		}
		h := sha256.New()
		src := &readErr{r: tr}
		body := io.TeeReader(src, h)
		if err := fn(want, body); err != nil {
			if src.err != nil { // fn failed because the archive did
				return m, truncated(src.err, "%s is cut short", want.Name)
			}
			return m, err
		}
		if _, err := io.Copy(io.Discard, body); err != nil { // what fn left unread
			return m, truncated(err, "%s is cut short", want.Name)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
			return m, refuse("%s does not match its checksum (SHA-256 %s, the manifest says %s): the file is damaged or was changed", want.Name, got, want.SHA256)
		}
	}
	switch hdr, err := tr.Next(); {
	case err == nil:
		return m, refuse("member %q is not in the manifest", hdr.Name)
	case !errors.Is(err, io.EOF):
		return m, truncated(err, "the archive does not end cleanly")
	}
	// Drain to the gzip trailer, whose CRC and length check the rest.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return m, truncated(err, "the archive does not end cleanly")
	}
	return m, nil
}

// readErr remembers the first error other than io.EOF that reading the
// archive gave, so a member handler's failure caused by a damaged archive
// is reported as the archive's fault.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func readManifest(tr *tar.Reader) (Manifest, error) {
	var m Manifest
	hdr, err := tr.Next()
	if err != nil {
		return m, truncated(err, "no manifest")
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg {
		return m, refuse("the first member is %q, not %s: not an Usher backup", hdr.Name, ManifestName)
	}
	if hdr.Size > maxManifest {
		return m, refuse("the manifest is %d bytes, more than %d", hdr.Size, maxManifest)
	}
	raw, err := io.ReadAll(tr)
	if err != nil {
		return m, truncated(err, "the manifest is cut short")
	}
	var probe struct {
		Format        string `json:"format"`
		FormatVersion int    `json:"formatVersion"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil || probe.Format != Format {
		return m, refuse("the manifest is not an Usher backup manifest")
	}
	if probe.FormatVersion > FormatVersion || probe.FormatVersion < 1 {
		return m, refuse("format version %d; this Usher reads format version %d at most: restore with the Usher version that wrote it", probe.FormatVersion, FormatVersion)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, refuse("the manifest does not decode: %v", err)
	}
	if m.Store != StoreSQLite && m.Store != StorePostgres {
		return m, refuse("the manifest names store %q", m.Store)
	}
	seen := make(map[string]bool, len(m.Members))
	for _, mem := range m.Members {
		if !ValidName(mem.Name) || seen[mem.Name] || mem.Size < 0 || len(mem.SHA256) != sha256.Size*2 || mem.Mode&^maxMode != 0 {
			return m, refuse("the manifest lists a bad member %q", mem.Name)
		}
		seen[mem.Name] = true
	}
	return m, nil
}

// truncated turns a read error into an *Error; an unexpected EOF says the
// file is cut short.
func truncated(err error, format string, args ...any) error {
	why := fmt.Sprintf(format, args...)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return refuse("%s: the file is truncated", why)
	}
	var be *Error
	if errors.As(err, &be) {
		return err
	}
	return refuse("%s: %v", why, err)
}
