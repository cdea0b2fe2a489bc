package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// Info is what `usher info` prints. The JSON names are a contract: scripts
// and tests read them.
type Info struct {
	IDScope                 string `json:"idScope"`
	HostName                string `json:"hostName"`
	HTTPSAddr               string `json:"httpsAddr"`
	MQTTAddr                string `json:"mqttAddr"`
	ServiceConnectionString string `json:"serviceConnectionString"`
	HubHostName             string `json:"hubHostName"`
	HubConnectionString     string `json:"hubConnectionString"`
	CAFile                  string `json:"caFile"`
}

func infoCommand(e *env) *cobra.Command {
	var dataDir string
	var where storeFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Print the ID scope, endpoints, connection strings and CA file of a data directory",
		Long: `Print what a client needs to reach this Usher: the ID scope, host name,
addresses, the owner connection strings of DPS and the built-in hub, and the
CA file to trust. Reads the data directory (or, with --store postgres, the
PostgreSQL database); the server need not be running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, err := readStoreInfo(cmd.Context(), where.locate(dataDir, e))
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			fmt.Fprintf(e.stdout, "ID scope:                   %s\nHost name:                  %s\nHTTPS address:              %s\nMQTT address:               %s\nCA file:                    %s\nService connection string:  %s\nHub host name:              %s\nHub connection string:      %s\n",
				info.IDScope, info.HostName, info.HTTPSAddr, info.MQTTAddr, info.CAFile, info.ServiceConnectionString, info.HubHostName, info.HubConnectionString)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (env USHER_DATA_DIR; default ./usher-data)")
	where.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// dataDirOr resolves the data directory: the flag, else USHER_DATA_DIR, else
// the default.
func dataDirOr(flag string, e *env) string {
	if flag != "" {
		return flag
	}
	if v := e.getenv("USHER_DATA_DIR"); v != "" {
		return v
	}
	return DefaultConfig().DataDir
}

// openExisting opens the database of a data directory that `usher serve`
// has initialised, without creating anything.
func openExisting(ctx context.Context, dir string) (*sqlite.DB, error) {
	path := filepath.Join(dir, dbFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no Usher data in %s (run `usher serve` first, or pass --data-dir): %w", dir, err)
	}
	return sqlite.Open(ctx, path)
}

// readInfo reads what a server recorded in the SQLite store of its data
// directory.
func readInfo(ctx context.Context, dir string) (Info, error) {
	return readStoreInfo(ctx, storeLocation{Kind: storeSQLite, DataDir: dir})
}

// readStoreInfo reads what a server recorded in its store.
func readStoreInfo(ctx context.Context, loc storeLocation) (Info, error) {
	db, err := openLocated(ctx, loc)
	if err != nil {
		return Info{}, err
	}
	defer db.Close()
	scope, err := instance.IDScope(ctx, db)
	if err != nil {
		return Info{}, err
	}
	ep, err := instance.LoadEndpoints(ctx, db)
	if err != nil {
		return Info{}, err
	}
	info := Info{IDScope: scope, HostName: ep.HostName(), HTTPSAddr: ep.HTTPSAddr, MQTTAddr: ep.MQTTAddr, HubHostName: ep.HubHostName(), CAFile: ep.CAFile}
	for _, p := range []struct {
		scope access.Scope
		name  string
		dst   *string
		host  string
	}{{access.DPS, access.DPSOwner, &info.ServiceConnectionString, ep.HostName()}, {access.Hub, access.HubOwner, &info.HubConnectionString, ep.HubHostName()}} {
		pol, err := db.Policy(ctx, p.scope, p.name)
		if err != nil {
			return Info{}, fmt.Errorf("policy %s: %w", p.name, err)
		}
		*p.dst = sas.ConnectionString{HostName: p.host, SharedAccessKeyName: pol.Name, SharedAccessKey: pol.PrimaryKey}.String()
	}
	return info, nil
}
