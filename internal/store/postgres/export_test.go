package postgres_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

// TestExportTablesCoverSchema fails when a migration adds a table that
// neither postgres.Tables (what a backup holds) nor postgres.RuntimeTables
// names.
func TestExportTablesCoverSchema(t *testing.T) {
	url := pgtest.SchemaURL(t)
	mustOpen(t, url)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_name <> 'schema_migrations' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(slices.Concat(postgres.Tables, postgres.RuntimeTables)))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tables in the schema (-postgres.Tables +schema):\n%s", diff)
	}
}

// export returns every table's COPY text.
func export(t *testing.T, db *postgres.DB) (map[string]*bytes.Buffer, postgres.ExportReport) {
	t.Helper()
	out := map[string]*bytes.Buffer{}
	rep, err := db.Export(context.Background(), func(table string) (io.WriteCloser, error) {
		out[table] = &bytes.Buffer{}
		return nopCloser{out[table]}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, rep
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func importAll(db *postgres.DB, tables map[string]*bytes.Buffer) ([]postgres.TableCount, error) {
	return db.Import(context.Background(), func(load postgres.Loader) error {
		for _, name := range postgres.Tables {
			if _, err := load(name, bytes.NewReader(tables[name].Bytes())); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := mustOpen(t, pgtest.SchemaURL(t))
	if err := src.PutSetting(ctx, "id_scope", "0ne0000BAC1"); err != nil {
		t.Fatal(err)
	}
	e := dps.Enrollment{RegistrationID: "dev-1", DeviceID: "dev-1", Settings: dps.Settings{
		Attestation:        dps.Attestation{Type: dps.SymmetricKey, PrimaryKey: "cHJpbWFyeQ==", SecondaryKey: "c2Vjb25kYXJ5"},
		InitialTwin:        &dps.InitialTwin{Tags: map[string]any{"line": "a\tb\\c\nd"}},
		ProvisioningStatus: dps.Enabled, ETag: "e1", Created: time.Unix(1, 0).UTC(), Updated: time.Unix(2, 0).UTC(),
	}}
	if err := src.CreateEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := src.AppendMessage(ctx, hub.Message{DeviceID: "dev-1", Enqueued: time.Unix(int64(i), 0).UTC(), Body: []byte{0, 1, 2, byte(i), '\\', '\n'}}, 100); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.AppendAudit(ctx, []audit.Entry{{Time: time.Unix(5, 0).UTC(), Kind: audit.Enrollment, Action: "Create", Subject: "dev-1"}}); err != nil {
		t.Fatal(err)
	}
	tables, rep := export(t, src)
	if diff := cmp.Diff(postgres.Migrations(), rep.Migrations); diff != "" {
		t.Errorf("exported migrations (-want +got):\n%s", diff)
	}
	rows := map[string]int64{}
	for _, c := range rep.Tables {
		rows[c.Name] = c.Rows
	}
	if rows["meta"] != 1 || rows["enrollments"] != 1 || rows["enrollment_tags"] != 1 || rows["hub_messages"] != 3 || rows["audit_log"] != 1 {
		t.Errorf("exported rows = %v", rows)
	}

	dst := mustOpen(t, pgtest.SchemaURL(t))
	counts, err := importAll(dst, tables)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rep.Tables, counts); diff != "" {
		t.Errorf("imported rows (-exported +imported):\n%s", diff)
	}
	again, _ := export(t, dst)
	for _, name := range postgres.Tables {
		if !bytes.Equal(tables[name].Bytes(), again[name].Bytes()) {
			t.Errorf("table %s differs after the round trip:\n%s\n---\n%s", name, tables[name], again[name])
		}
	}
	got, err := dst.Enrollment(ctx, "dev-1")
	if err != nil || got.Attestation.PrimaryKey != e.Attestation.PrimaryKey {
		t.Errorf("restored enrollment = %+v, %v", got, err)
	}
	// The identity sequences continue after the loaded rows.
	if err := dst.AppendMessage(ctx, hub.Message{DeviceID: "dev-1", Body: []byte("next")}, 100); err != nil {
		t.Fatalf("append after import: %v", err)
	}
	msgs, err := dst.Messages(ctx, 0, 10)
	if err != nil || len(msgs) != 4 || msgs[3].Seq <= msgs[2].Seq {
		t.Errorf("messages after import = %+v, %v", msgs, err)
	}
	if err := dst.AppendAudit(ctx, []audit.Entry{{Time: time.Unix(6, 0).UTC(), Kind: audit.Enrollment, Action: "Delete", Subject: "dev-1"}}); err != nil {
		t.Errorf("audit append after import: %v", err)
	}

	t.Run("refused/not empty", func(t *testing.T) {
		_, err := importAll(dst, tables)
		if !fault.Is(err, fault.Conflict) || !strings.Contains(err.Error(), "already holds Usher data") {
			t.Errorf("import into a used store = %v, want Conflict", err)
		}
	})
	t.Run("refused/nothing kept after a failed load", func(t *testing.T) {
		fresh := mustOpen(t, pgtest.SchemaURL(t))
		_, err := fresh.Import(ctx, func(load postgres.Loader) error {
			if _, err := load("meta", bytes.NewReader(tables["meta"].Bytes())); err != nil {
				return err
			}
			_, err := load("enrollments", strings.NewReader("only one column\n"))
			return err
		})
		if !fault.Is(err, fault.Invalid) {
			t.Errorf("bad rows: %v, want Invalid", err)
		}
		if _, err := fresh.Setting(ctx, "id_scope"); !fault.Is(err, fault.NotFound) {
			t.Errorf("after a failed import the setting is there (%v): the load was not one transaction", err)
		}
		for _, tc := range []struct{ name, table string }{{"unknown", "pg_authid"}, {"out of order", "meta"}} {
			_, err := fresh.Import(ctx, func(load postgres.Loader) error {
				if _, err := load("policies", strings.NewReader("")); err != nil {
					return err
				}
				_, err := load(tc.table, strings.NewReader(""))
				return err
			})
			if !fault.Is(err, fault.Invalid) {
				t.Errorf("%s table: %v, want Invalid", tc.name, err)
			}
		}
	})
}

// TestExportSealed: an export of a store with a secrets key holds the
// sealed values only, and loads into a store that reads them with the
// same key and not without it.
func TestExportSealed(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, postgres.SecretsKeySize)
	src, err := postgres.Open(ctx, pgtest.SchemaURL(t), postgres.Options{SecretsKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const secret = "tls-ca-private-key-material"
	if err := src.PutSetting(ctx, "tls_ca", secret); err != nil {
		t.Fatal(err)
	}
	tables, _ := export(t, src)
	if strings.Contains(tables["meta"].String(), secret) || !strings.Contains(tables["meta"].String(), "usher-sealed:v1:") {
		t.Fatalf("exported meta holds the plaintext or no sealed value:\n%s", tables["meta"])
	}
	url := pgtest.SchemaURL(t)
	withoutKey := mustOpen(t, url)
	if _, err := importAll(withoutKey, tables); err != nil {
		t.Fatalf("import without the key (rows load as they are): %v", err)
	}
	if _, err := withoutKey.Setting(ctx, "tls_ca"); err == nil {
		t.Error("a sealed setting read without the key")
	}
	withKey, err := postgres.Open(ctx, url, postgres.Options{SecretsKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer withKey.Close()
	if v, err := withKey.Setting(ctx, "tls_ca"); err != nil || v != secret {
		t.Errorf("restored sealed setting = %q, %v; want %q", v, err, secret)
	}
}
