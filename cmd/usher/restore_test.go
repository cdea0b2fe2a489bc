package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/backup"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

// rewrite re-packs a backup file, letting edit change members (by name) on
// the way; the manifest is left as it is unless edit changes it too.
func rewrite(t *testing.T, file string, edit func(name string, body []byte) []byte) []byte {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		body = edit(hdr.Name, body)
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// member returns one member of a backup file.
func member(t *testing.T, file, name string) []byte {
	t.Helper()
	var out []byte
	rewrite(t, file, func(n string, b []byte) []byte {
		if n == name {
			out = bytes.Clone(b)
		}
		return b
	})
	if out == nil {
		t.Fatalf("%s has no member %s", file, name)
	}
	return out
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "edited.tar.gz")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// schemaTables lists the tables of the schema a pgtest URL points at.
func schemaTables(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// dirEntries lists a directory, nil when it does not exist.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestRestoreRefuses(t *testing.T) {
	s := startServer(t)
	provisionDevice(t, s, "dev-1")
	good := filepath.Join(t.TempDir(), "good.tar.gz")
	s.mustUsher(t, "backup", "--out", good)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	pgURL := pgtest.SchemaURL(t)
	pg := pgtest.SchemaURL(t)
	pgServer := startServerOn(t, pg)
	pgGood := filepath.Join(t.TempDir(), "pg.tar.gz")
	pgServer.mustUsher(t, "backup", "--out", pgGood)

	used := t.TempDir()
	if err := os.WriteFile(filepath.Join(used, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	tampered := rewrite(t, good, func(name string, b []byte) []byte {
		if name == "tls/ca-key.pem" {
			b = bytes.Replace(b, []byte("PRIVATE KEY"), []byte("PRIVATE KEZ"), 1)
		}
		return b
	})
	future := rewrite(t, good, func(name string, b []byte) []byte {
		if name == "manifest.json" {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["formatVersion"] = 99
			b, _ = json.Marshal(m)
		}
		return b
	})
	// A damaged database under a manifest that matches it: only the
	// integrity check can tell.
	db := member(t, good, dbFile)
	for page := 4096; page+4096 <= len(db); page += 4096 { // every b-tree page header after the first
		copy(db[page:page+12], bytes.Repeat([]byte{0xAA}, 12))
	}
	sum := sha256.Sum256(db)
	damaged := rewrite(t, good, func(name string, b []byte) []byte {
		switch name {
		case dbFile:
			return db
		case "manifest.json":
			var m backup.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m.Members[0].SHA256 = hex.EncodeToString(sum[:])
			b, _ = json.Marshal(m)
		}
		return b
	})
	for _, tc := range []struct {
		name   string
		file   string
		target []string // restore flags; a data dir not given is a fresh path
		want   string
	}{
		{"refused/data dir not empty", good, []string{"--data-dir", used}, "data directory " + used + " is not empty (it holds notes.txt)"},
		{"refused/truncated", writeFile(t, raw[:len(raw)*2/3]), nil, "the file is truncated"},
		{"refused/truncated to the manifest", writeFile(t, raw[:600]), nil, "truncated"},
		{"refused/tampered member", writeFile(t, tampered), nil, "tls/ca-key.pem does not match its checksum"},
		{"refused/future format version", writeFile(t, future), nil, "format version 99; this Usher reads format version 1 at most"},
		{"refused/damaged database", writeFile(t, damaged), nil, "integrity check"},
		{"refused/not a backup", writeFile(t, []byte("#!/bin/sh\necho hello\n")), nil, "not a gzip-compressed Usher backup"},
		{"refused/sqlite into postgres", good, []string{"--store", "postgres", "--postgres-url", pgURL}, "this is a backup of a sqlite store; restoring it into a postgres store is not supported"},
		{"refused/postgres into sqlite", pgGood, nil, "this is a backup of a postgres store; restoring it into a sqlite store is not supported"},
		{"refused/postgres database not empty", pgGood, []string{"--store", "postgres", "--postgres-url", pg}, "already holds Usher data"},
		{"refused/tampered, into postgres", writeFile(t, tampered), []string{"--store", "postgres", "--postgres-url", pgURL}, "does not match its checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh := filepath.Join(t.TempDir(), "target")
			args := append([]string{"restore", "--in", tc.file}, tc.target...)
			if !slices.Contains(tc.target, "--data-dir") {
				args = append(args, "--data-dir", fresh)
			}
			usedBefore := dirEntries(t, used)
			out, errOut, err := usherIn(t, nil, args...)
			if err == nil {
				t.Fatalf("restore succeeded:\n%s", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr = %q, want it to say %q", errOut, tc.want)
			}
			if got := dirEntries(t, fresh); got != nil {
				t.Errorf("a refused restore wrote %v into the data directory", got)
			}
			if got := dirEntries(t, used); !slices.Equal(got, usedBefore) {
				t.Errorf("a refused restore changed the used directory: %v, was %v", got, usedBefore)
			}
			if got := schemaTables(t, pgURL); len(got) != 0 {
				t.Errorf("a refused restore created tables %v in the empty schema", got)
			}
		})
	}
	// The source server's data is still whole after a refused restore.
	pgServer.mustUsher(t, "enrollment", "list")
}

// withMigrations rewrites a backup's manifest to claim the given schema.
func withMigrations(t *testing.T, file string, migrations []string) string {
	t.Helper()
	return writeFile(t, rewrite(t, file, func(name string, b []byte) []byte {
		if name == backup.ManifestName {
			var m backup.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m.Migrations = migrations
			b, _ = json.Marshal(m)
		}
		return b
	}))
}

// TestRestorePostgresOlderSchema restores a backup taken before this
// build's last migration: the rows load into the schema they were taken
// from, then the remaining migrations run over them, and a server starts on
// the result with the records whole. (The last migration so far adds only
// runtime tables, so a current backup relabelled as older has the older
// backup's exact rows.) A backup of a schema this build does not know is
// refused, writing nothing.
func TestRestorePostgresOlderSchema(t *testing.T) {
	known := postgres.Migrations()
	if len(known) < 2 {
		t.Fatal("needs two migrations")
	}
	src := startServerOn(t, pgtest.SchemaURL(t))
	const id = "old-schema-dev"
	provisionDevice(t, src, id)
	file := filepath.Join(t.TempDir(), "pg.tar.gz")
	src.mustUsher(t, "backup", "--out", file)

	older := withMigrations(t, file, known[:len(known)-1])
	dst := pgtest.SchemaURL(t)
	out, errOut, err := usherIn(t, nil, "restore", "--in", older, "--store", "postgres", "--postgres-url", dst)
	if err != nil {
		t.Fatalf("restore of an older schema: %v\n%s", err, errOut)
	}
	if want := "Migrated the restored schema from " + known[len(known)-2] + " to " + known[len(known)-1]; !strings.Contains(out, want) {
		t.Errorf("restore said %q, want it to say %q", out, want)
	}
	for _, table := range postgres.RuntimeTables {
		if !slices.Contains(schemaTables(t, dst), table) {
			t.Errorf("table %s of the later migration is missing after the restore", table)
		}
	}
	restored := startServerOn(t, dst)
	if got, want := showDevice(t, restored, id), showDevice(t, src, id); got.GenerationID == "" || got.GenerationID != want.GenerationID {
		t.Errorf("restored device generationId %q, want %q", got.GenerationID, want.GenerationID)
	}

	newer := withMigrations(t, file, append(slices.Clone(known), "9999_from_the_future"))
	empty := pgtest.SchemaURL(t)
	if _, errOut, err := usherIn(t, nil, "restore", "--in", newer, "--store", "postgres", "--postgres-url", empty); err == nil || !strings.Contains(errOut, "is not one this Usher knows") {
		t.Errorf("restore of a newer schema: err %v, stderr %q; want a refusal", err, errOut)
	}
	if got := schemaTables(t, empty); len(got) != 0 {
		t.Errorf("a refused restore created tables %v", got)
	}
}
