package main

// `usher backup` and `usher restore`: one archive (internal/backup) of a
// store and the data directory's TLS material, taken while the server runs.
// See docs/backup.md.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/backup"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// tlsDir is the data directory's TLS folder (pki.Ensure's directory).
const tlsDir = "tls"

func backupCommand(e *env) *cobra.Command {
	var out, dataDir string
	var where storeFlags
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Write a consistent backup of the store and the TLS material to one file, while the server runs",
		Long: `Write a backup of an Usher installation to FILE (a gzip-compressed tar
archive, mode 0600: it holds every key). The server may be running: writers
are not stopped.

SQLite (the default): a snapshot of the data directory's database taken in
one read transaction (VACUUM INTO), checked with PRAGMA integrity_check, and
the data directory's tls/ folder (the generated CAs, their keys and the
server certificates; devices that trust the CA keep working after a
restore).

PostgreSQL (--store postgres --postgres-url URL): every Usher table exported
with COPY in one REPEATABLE READ transaction, the generated TLS material
included (it lives in the database). Rows sealed with a secrets key stay
sealed: the restored server needs the same key.

The file starts with a manifest (format version, Usher version, store,
schema migrations, time, and the size and SHA-256 of every member) that
` + "`usher restore`" + ` checks before it writes anything. The archive is written
next to FILE under a temporary name and renamed when complete.`,
		Example: `  usher backup --out /var/backups/usher/usher-$(date +%F).tar.gz
  usher backup --store postgres --postgres-url "$USHER_POSTGRES_URL" --out usher.tar.gz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("give --out FILE")
			}
			return runBackup(cmd.Context(), e, where.locate(dataDir, e), out)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write (replaced if it exists)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory of the server (env USHER_DATA_DIR; default ./usher-data)")
	where.register(cmd.Flags())
	return cmd
}

func restoreCommand(e *env) *cobra.Command {
	var in, dataDir string
	var where storeFlags
	cmd := &cobra.Command{
		Use:   "restore --in FILE",
		Short: "Restore a backup into an empty data directory or an empty PostgreSQL database",
		Long: `Restore a file written by ` + "`usher backup`" + `. The whole file is checked first
(format version, every member's size and SHA-256, the archive's end): a
truncated, damaged or edited file is refused and nothing is written.

A SQLite backup goes into --data-dir, which must be missing or empty: the
database is written under a temporary name, checked with PRAGMA
integrity_check and then renamed to usher.db; tls/ is restored beside it.

A PostgreSQL backup goes into --store postgres --postgres-url URL, whose
Usher tables must be empty (a new database, or a new schema through
options=-c search_path=NAME): the schema migrations run up to the backup's,
every row is loaded in one transaction, then the later migrations of this
Usher run over them. A backup from a newer Usher is refused. Sealed rows are
loaded as they are: start the server with the secrets key of the server that
was backed up.

A backup restores into the store kind it came from; SQLite to PostgreSQL
(or back) is refused. Start the server on the restored data afterwards,
with the same --hostname and --hub-hostname as before.`,
		Example: `  usher restore --in usher-2026-11-26.tar.gz --data-dir /var/lib/usher
  usher restore --in usher.tar.gz --store postgres --postgres-url "postgres://usher@db/usher_new"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" {
				return errors.New("give --in FILE")
			}
			return runRestore(cmd.Context(), e, where.locate(dataDir, e), in)
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "backup file to restore")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory to restore into: missing or empty (env USHER_DATA_DIR; default ./usher-data)")
	where.register(cmd.Flags())
	return cmd
}

func runBackup(ctx context.Context, e *env, loc storeLocation, out string) error {
	start := time.Now()
	p := newProgress(e.stderr)
	defer p.done()
	stage, err := os.MkdirTemp(filepath.Dir(out), ".usher-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(stage)
	m := backup.Manifest{UsherVersion: currentVersion().short(), Store: loc.Kind, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	var names []string
	switch loc.Kind {
	case storeSQLite:
		names, err = stageSQLite(ctx, loc, stage, &m, p)
	case storePostgres:
		names, err = stagePostgres(ctx, loc, stage, &m, p)
	default:
		err = fmt.Errorf("store %q is not sqlite or postgres", loc.Kind)
	}
	if err != nil {
		return err
	}
	p.say("writing %s", out)
	size, err := writeArchive(out, m, stage, names)
	if err != nil {
		return err
	}
	p.done()
	fmt.Fprintf(e.stdout, "Backup of the %s store written to %s (%s, %s).\n", m.Store, out, byteSize(size), time.Since(start).Round(time.Millisecond))
	printTables(e.stdout, m.Tables)
	return nil
}

// stageSQLite snapshots the database and copies tls/ into stage.
func stageSQLite(ctx context.Context, loc storeLocation, stage string, m *backup.Manifest, p *progress) ([]string, error) {
	db, err := openExisting(ctx, loc.DataDir)
	if err != nil {
		return nil, err
	}
	p.say("snapshot of %s", filepath.Join(loc.DataDir, dbFile))
	snap := filepath.Join(stage, dbFile)
	err = db.Snapshot(ctx, snap)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(snap, 0o600) // it holds keys
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	p.say("integrity check of the snapshot")
	rep, err := sqlite.Check(ctx, snap)
	if err != nil {
		return nil, fmt.Errorf("backup: the snapshot: %w", err)
	}
	m.Migrations = rep.Migrations
	for _, t := range rep.Tables {
		m.Tables = append(m.Tables, backup.Table{Name: t.Name, Rows: t.Rows})
	}
	names := []string{dbFile}
	tlsNames, err := copyTLS(filepath.Join(loc.DataDir, tlsDir), filepath.Join(stage, tlsDir))
	if err != nil {
		return nil, fmt.Errorf("backup: TLS material: %w", err)
	}
	return append(names, tlsNames...), nil
}

// copyTLS copies the regular files of src (none when it does not exist,
// as with --tls-cert) to dst and returns their member names.
func copyTLS(src, dst string) ([]string, error) {
	entries, err := os.ReadDir(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return nil, err
	}
	var names []string
	for _, ent := range entries {
		if !ent.Type().IsRegular() {
			continue
		}
		info, err := ent.Info()
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(src, ent.Name()))
		if err != nil {
			return nil, err
		}
		// Certificates keep their 0644, keys their 0600 (Pack caps the mode
		// at 0644).
		staged := filepath.Join(dst, ent.Name())
		if err := os.WriteFile(staged, b, 0o600); err != nil {
			return nil, err
		}
		if err := os.Chmod(staged, info.Mode().Perm()); err != nil {
			return nil, err
		}
		names = append(names, tlsDir+"/"+ent.Name())
	}
	return names, nil
}

// stagePostgres exports every table into stage/postgres/.
func stagePostgres(ctx context.Context, loc storeLocation, stage string, m *backup.Manifest, p *progress) ([]string, error) {
	store, err := openLocated(ctx, loc)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	db, ok := store.(*postgres.DB)
	if !ok {
		return nil, fmt.Errorf("--store postgres opened a %T", store)
	}
	if err := os.Mkdir(filepath.Join(stage, "postgres"), 0o700); err != nil {
		return nil, err
	}
	var names []string
	rep, err := db.Export(ctx, func(table string) (io.WriteCloser, error) {
		p.say("exporting %s", table)
		name := pgMember(table)
		names = append(names, name)
		return os.OpenFile(filepath.Join(stage, filepath.FromSlash(name)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	})
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	m.Migrations = rep.Migrations
	for _, t := range rep.Tables {
		m.Tables = append(m.Tables, backup.Table{Name: t.Name, Rows: t.Rows})
	}
	return names, nil
}

func pgMember(table string) string { return "postgres/" + table + ".copy" }

// writeArchive packs stage into out through a temporary file in out's
// directory, renamed into place once synced; it returns the size.
func writeArchive(out string, m backup.Manifest, stage string, names []string) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(out), ".usher-backup-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := backup.Pack(f, m, stage, names); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	ok = true
	return st.Size(), nil
}

func printTables(w io.Writer, tables []backup.Table) {
	var total int64
	for _, t := range tables {
		fmt.Fprintf(w, "  %-24s %10d rows\n", t.Name, t.Rows)
		total += t.Rows
	}
	fmt.Fprintf(w, "  %-24s %10d rows\n", "total", total)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// progress shows what a long backup or restore is doing on a terminal,
// one redrawn line on stderr; elsewhere it says nothing.
type progress struct {
	w    io.Writer
	on   bool
	last time.Time
	used bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w, on: isTerminal(w)} }

func (p *progress) say(format string, args ...any) {
	if !p.on {
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s…", fmt.Sprintf(format, args...))
	p.used = true
}

// reading shows how far through the file r is, at most five times a
// second.
func (p *progress) reading(what string, r *countingReader) {
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.say("%s %s of %s (%d %%)", what, byteSize(r.n), byteSize(r.size), r.n*100/max(r.size, 1))
}

func (p *progress) done() {
	if p.used {
		fmt.Fprint(p.w, "\r\033[K")
		p.used = false
	}
}

// countingReader counts what is read through it and reports progress.
type countingReader struct {
	r    io.Reader
	n    int64
	size int64
	tick func()
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if c.tick != nil {
		c.tick()
	}
	return n, err
}
