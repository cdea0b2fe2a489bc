// Package schema lists a store's embedded SQL migrations in the order they
// apply. The stores run them; this package only names them, so that both
// stores (and backups, which record the schema they were taken from) agree
// on what a migration's version is.
package schema

import (
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Migration is one migration file.
type Migration struct {
	Version string // the file name without ".sql", e.g. "0007_audit"
	Path    string // its path in the file system, for reading it
}

// Migrations returns the *.sql files directly in dir of fsys, ordered by
// name (the order they apply in).
func Migrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Migration, len(names))
	for i, n := range names {
		out[i] = Migration{Version: strings.TrimSuffix(path.Base(n), ".sql"), Path: n}
	}
	return out, nil
}

// Versions returns the migrations' versions, in order.
func Versions(ms []Migration) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Version
	}
	return out
}
