package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/usher-iot/usher/internal/backup"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// restoringSuffix marks the database while it is restored; usher.db exists
// only once it passed the integrity check.
const restoringSuffix = ".restoring"

func runRestore(ctx context.Context, e *env, loc storeLocation, in string) error {
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	p := newProgress(e.stderr)
	defer p.done()
	read := func(what string) *countingReader {
		c := &countingReader{r: f, size: st.Size()}
		c.tick = func() { p.reading(what, c) }
		return c
	}
	// First pass: the whole file is checked before anything is written.
	m, err := backup.Verify(read("checking"))
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := restorable(m, loc); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var tables []backup.Table
	var where string
	switch loc.Kind {
	case storeSQLite:
		where = loc.DataDir
		tables, err = restoreSQLite(ctx, loc.DataDir, read("restoring"))
	case storePostgres:
		where = "the PostgreSQL database"
		tables, err = restorePostgres(ctx, e, loc, m, read("loading"))
	}
	if err != nil {
		return err
	}
	p.done()
	fmt.Fprintf(e.stdout, "Restored the %s backup of %s (Usher %s) into %s.\n", m.Store, m.CreatedAt.Format("2006-01-02 15:04:05 UTC"), m.UsherVersion, where)
	printTables(e.stdout, tables)
	return nil
}

// restorable says why a verified backup cannot go into loc: another store
// kind, or a schema this build does not have.
func restorable(m backup.Manifest, loc storeLocation) error {
	if m.Store != loc.Kind {
		return fmt.Errorf("this is a backup of a %s store; restoring it into a %s store is not supported: give --store %s", m.Store, loc.Kind, m.Store)
	}
	switch loc.Kind {
	case storeSQLite:
		if !slices.Contains(memberNames(m), dbFile) {
			return fmt.Errorf("the backup holds no %s", dbFile)
		}
		// An older schema is migrated when the server opens it; a newer
		// one needs the newer Usher.
		if known := sqlite.Migrations(); len(m.Migrations) > len(known) || !slices.Equal(known[:len(m.Migrations)], m.Migrations) {
			return fmt.Errorf("the backup's schema (migrations %s) is not one this Usher knows (%s): restore it with the Usher version that made it (%s)", span(m.Migrations), span(known), m.UsherVersion)
		}
	case storePostgres:
		// An older schema is restored as it was, then migrated with its
		// rows; a newer one needs the newer Usher.
		if known := postgres.Migrations(); len(m.Migrations) == 0 || len(m.Migrations) > len(known) || !slices.Equal(known[:len(m.Migrations)], m.Migrations) {
			return fmt.Errorf("the backup's schema (migrations %s) is not one this Usher knows (%s): restore it with the Usher version that made it (%s)", span(m.Migrations), span(known), m.UsherVersion)
		}
	default:
		return fmt.Errorf("store %q is not sqlite or postgres", loc.Kind)
	}
	return nil
}

func span(ms []string) string {
	if len(ms) == 0 {
		return "none"
	}
	return ms[0] + " to " + ms[len(ms)-1]
}

func memberNames(m backup.Manifest) []string {
	out := make([]string, len(m.Members))
	for i, mem := range m.Members {
		out[i] = mem.Name
	}
	return out
}

// restoreSQLite writes the archive into dir, which must be missing or
// empty; on any failure it removes what it wrote.
func restoreSQLite(ctx context.Context, dir string, r io.Reader) (tables []backup.Table, err error) {
	created, err := emptyDataDir(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cleanDataDir(dir, created)
		}
	}()
	tmp := filepath.Join(dir, dbFile+restoringSuffix)
	if _, err := backup.Unpack(r, func(mem backup.Member, body io.Reader) error {
		if mem.Name == dbFile {
			return writeNew(tmp, body, 0o600)
		}
		target, err := tlsTarget(dir, mem.Name)
		if err != nil {
			return err
		}
		return writeNew(target, body, mem.Mode)
	}); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	rep, err := sqlite.Check(ctx, tmp)
	if err != nil {
		return nil, fmt.Errorf("restore: the restored database: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dbFile)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	for _, t := range rep.Tables {
		tables = append(tables, backup.Table{Name: t.Name, Rows: t.Rows})
	}
	return tables, nil
}

// emptyDataDir creates dir (0700) when missing and reports whether it did;
// an existing dir must be empty.
func emptyDataDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("restore: data directory: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("restore: data directory: %w", err)
	case len(entries) > 0:
		var names []string
		for _, ent := range entries {
			names = append(names, ent.Name())
		}
		return false, fmt.Errorf("data directory %s is not empty (it holds %s); restore needs a missing or empty directory: move the old one aside first", dir, strings.Join(names, ", "))
	}
	return false, os.Chmod(dir, 0o700)
}

// cleanDataDir undoes a failed restore: dir was empty or missing before.
func cleanDataDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		os.RemoveAll(filepath.Join(dir, ent.Name()))
	}
}

// tlsTarget maps a member of a SQLite backup other than the database to
// its path: a file directly in tls/.
func tlsTarget(dir, name string) (string, error) {
	if d, base := path.Split(name); d == tlsDir+"/" && base != "" && backup.ValidName(name) {
		if err := os.MkdirAll(filepath.Join(dir, tlsDir), 0o700); err != nil {
			return "", err
		}
		return filepath.Join(dir, tlsDir, base), nil
	}
	return "", fmt.Errorf("restore: unexpected member %q in a SQLite backup", name)
}

// writeNew writes r to a new file, synced, with mode (0600 when zero; the
// manifest never grants more than 0644).
func writeNew(p string, r io.Reader, mode os.FileMode) error {
	if mode == 0 {
		mode = 0o600
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("restore: %s: %w", p, err)
	}
	if err := f.Chmod(mode & 0o644); err != nil {
		f.Close()
		return fmt.Errorf("restore: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("restore: %w", err)
	}
	return f.Close()
}

// restorePostgres loads the archive's tables into the database in one
// transaction, into the schema the backup was taken from (its last
// migration), then opens the store again so the rest of this build's
// migrations run over the loaded rows.
func restorePostgres(ctx context.Context, e *env, loc storeLocation, m backup.Manifest, r io.Reader) ([]backup.Table, error) {
	if loc.PostgresURL == "" {
		return nil, fmt.Errorf("--store postgres needs --postgres-url (or USHER_POSTGRES_URL)")
	}
	if loc.keyErr != nil {
		return nil, loc.keyErr
	}
	db, err := postgres.Open(ctx, loc.PostgresURL, postgres.Options{SecretsKey: loc.SecretsKey, MigrateUpTo: m.Migrations[len(m.Migrations)-1]})
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL store: %w", err)
	}
	defer db.Close()
	counts, err := db.Import(ctx, func(load postgres.Loader) error {
		_, err := backup.Unpack(r, func(mem backup.Member, body io.Reader) error {
			table, ok := strings.CutSuffix(strings.TrimPrefix(mem.Name, "postgres/"), ".copy")
			if !ok || mem.Name != pgMember(table) {
				return fmt.Errorf("unexpected member %q in a PostgreSQL backup", mem.Name)
			}
			_, err := load(table, body)
			return err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("restore: nothing was loaded: %w", err)
	}
	if known := postgres.Migrations(); len(m.Migrations) < len(known) {
		migrated, err := postgres.Open(ctx, loc.PostgresURL, postgres.Options{SecretsKey: loc.SecretsKey})
		if err != nil {
			return nil, fmt.Errorf("restore: the rows are loaded, but migrating them from %s to %s failed (start the server to retry): %w", m.Migrations[len(m.Migrations)-1], known[len(known)-1], err)
		}
		migrated.Close()
		fmt.Fprintf(e.stdout, "Migrated the restored schema from %s to %s.\n", m.Migrations[len(m.Migrations)-1], known[len(known)-1])
	}
	// Sealed rows load without the key; say now if the server will not
	// read them with the key given.
	if _, err := instance.IDScope(ctx, db); err != nil && !fault.Is(err, fault.NotFound) {
		fmt.Fprintf(e.stderr, "usher: warning: the restored data does not read with the secrets key given (%v); start the server with the key of the server that was backed up\n", err)
	}
	tables := make([]backup.Table, len(counts))
	for i, c := range counts {
		tables[i] = backup.Table{Name: c.Name, Rows: c.Rows}
	}
	return tables, nil
}
