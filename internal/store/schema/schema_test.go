package schema

import (
	"slices"
	"testing"
	"testing/fstest"
)

func TestMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"migrations/0002_more.sql":  {Data: []byte("SELECT 2")},
		"migrations/0001_init.sql":  {Data: []byte("SELECT 1")},
		"migrations/README.md":      {Data: []byte("not a migration")},
		"migrations/old/0000.sql":   {Data: []byte("not directly in the folder")},
		"other/0003_elsewhere.sql":  {Data: []byte("another folder")},
		"migrations/0010_later.sql": {Data: []byte("SELECT 10")},
	}
	ms, err := Migrations(fsys, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Versions(ms), []string{"0001_init", "0002_more", "0010_later"}; !slices.Equal(got, want) {
		t.Errorf("versions %v, want %v", got, want)
	}
	if ms[0].Path != "migrations/0001_init.sql" {
		t.Errorf("path %q", ms[0].Path)
	}
}
