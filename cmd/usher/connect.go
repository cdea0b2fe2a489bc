package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/sas"
)

// dpsCLI is what every `usher enrollment …` and `usher enrollment-group …`
// command shares: where the DPS is and how to print answers.
type dpsCLI struct {
	e    *env
	conn connFlags
	out  outputFormat
}

// newDPSCLI returns the shared state with the default output format.
func newDPSCLI(e *env) *dpsCLI {
	return &dpsCLI{e: e, out: outputJSON}
}

// register adds the connection and output flags to a command tree's root,
// for all of its subcommands.
func (c *dpsCLI) register(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	c.conn.register(fs)
	fs.VarP(&c.out, "output", "o", "output format: json or table")
}

// connFlags say which DPS to talk to. They are resolved, first match wins:
//
//  1. --login / --connection-string: a DPS service connection string (az's
//     --login); dials its HostName on port 443 unless --address is given;
//  2. --data-dir: the data directory of an Usher server; uses its owner
//     connection string and CA, and dials the address it last listened on;
//  3. USHER_CONNECTION_STRING, as 1;
//  4. USHER_DATA_DIR, else ./usher-data, as 2.
//
// --ca-file adds a CA to trust (in case 2 it replaces the data directory's);
// --address overrides the address dialled in every case.
type connFlags struct {
	login            string
	connectionString string
	dataDir          string
	caFile           string
	address          string
	where            storeFlags
}

func (f *connFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.login, "login", "l", "", "DPS service connection string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…); env USHER_CONNECTION_STRING")
	fs.StringVar(&f.connectionString, "connection-string", "", "same as --login")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory of a local Usher server, used when no connection string is given (env USHER_DATA_DIR; default ./usher-data)")
	f.where.register(fs)
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of an extra CA to trust (with --data-dir, instead of the data directory's CA)")
	fs.StringVar(&f.address, "address", "", "host:port to dial instead of the connection string's HostName:443 (TLS still checks HostName)")
}

// dial resolves the connection flags into a DPS service client.
func (f *connFlags) dial(ctx context.Context, e *env) (*client.Client, error) {
	return f.dialTo(ctx, e, dpsTarget)
}

// dialHub resolves the connection flags into a client of the hub's service
// API: --login is then a hub connection string (env
// USHER_HUB_CONNECTION_STRING), and a data directory gives its
// hubConnectionString.
func (f *connFlags) dialHub(ctx context.Context, e *env) (*client.Client, error) {
	return f.dialTo(ctx, e, hubTarget)
}

// target is which service a command talks to.
type target struct {
	name  string
	env   string
	cs    func(Info) string
	newFn func(sas.ConnectionString, client.Options) (*client.Client, error)
}

var (
	dpsTarget = target{"DPS", "USHER_CONNECTION_STRING", func(i Info) string { return i.ServiceConnectionString }, client.New}
	hubTarget = target{"hub", "USHER_HUB_CONNECTION_STRING", func(i Info) string { return i.HubConnectionString }, client.NewHub}
)

// connection is the connection string the flags (or t's environment
// variable) give, "" when the server's store is to be read instead.
func (f *connFlags) connection(e *env, t target) (string, error) {
	if f.login != "" && f.connectionString != "" && f.login != f.connectionString {
		return "", errors.New("give --login or --connection-string, not both")
	}
	cs := f.login
	if cs == "" {
		cs = f.connectionString
	}
	if cs == "" && f.dataDir == "" {
		cs = e.getenv(t.env)
	}
	return cs, nil
}

func (f *connFlags) dialTo(ctx context.Context, e *env, t target) (*client.Client, error) {
	cs, err := f.connection(e, t)
	if err != nil {
		return nil, err
	}
	if cs != "" {
		parsed, err := sas.ParseConnectionString(cs)
		if err != nil {
			return nil, fmt.Errorf("connection string: %w", err)
		}
		return t.newFn(parsed, client.Options{CAFile: f.caFile, Address: f.address})
	}
	return f.dialStore(ctx, f.where.locate(f.dataDir, e), t)
}

// dialStore connects with what a server recorded in its store (the data
// directory's, or PostgreSQL with --store postgres).
func (f *connFlags) dialStore(ctx context.Context, loc storeLocation, t target) (*client.Client, error) {
	dir := loc.DataDir
	info, err := readStoreInfo(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("no %s to talk to (pass --login CONNECTION_STRING, set %s, or point --data-dir at a server's data directory): %w", t.name, t.env, err)
	}
	cs, err := sas.ParseConnectionString(t.cs(info))
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	addr := f.address
	if addr == "" {
		if addr, err = localAddr(info.HTTPSAddr); err != nil {
			return nil, fmt.Errorf("data directory %s: %w", dir, err)
		}
	}
	ca := f.caFile
	if ca == "" {
		ca = info.CAFile
	}
	return t.newFn(cs, client.Options{CAFile: ca, Address: addr})
}

// localAddr turns the address a server listened on into one to dial from
// the same machine: an unspecified host (":443", "0.0.0.0:443", "[::]:443")
// becomes loopback.
func localAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "", fmt.Errorf("the server recorded no usable HTTPS address (%q); start `usher serve`", listen)
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() == nil:
		host = "::1"
	case ip != nil && ip.IsUnspecified():
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
