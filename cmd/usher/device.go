package main

// `usher device …` plays a device. `register` provisions through the DPS
// the way the Azure IoT device SDKs do (package deviceclient), over HTTPS
// or MQTT, so an operator can check an enrollment end to end without an SDK.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/deviceclient"
)

func deviceCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Act as a device: register with the DPS",
		Long: `Act as a device the way the Azure IoT device SDKs do: register with the DPS
to be assigned to an IoT hub.`,
	}
	cmd.AddCommand(deviceRegisterCommand(e))
	return cmd
}

// deviceRegisterFlags are the flags of `usher device register`.
type deviceRegisterFlags struct {
	idScope   string
	regID     string
	key       string
	groupKey  string
	transport enumFlag
	payload   string
	endpoint  string
	caFile    string
	dataDir   string
	out       outputFormat
	timeout   time.Duration
}

func deviceRegisterCommand(e *env) *cobra.Command {
	f := &deviceRegisterFlags{transport: enumFlag{allowed: []string{deviceclient.HTTPS, deviceclient.MQTT}, value: deviceclient.HTTPS}, out: outputJSON}
	cmd := &cobra.Command{
		Use:   "register --registration-id R (--key K | --group-key G) [flags]",
		Short: "Register a device with the DPS (symmetric key) and print its assignment",
		Long: `Register a device with the DPS using a symmetric key, as the Azure IoT device
SDKs do: send the registration, poll its operation until DPS answers, and
print the outcome (assignedHub, deviceId, status, substatus, registrationId
and the returned payload). Progress goes to stderr. The command fails when
the registration ends failed or disabled, or when DPS refuses the device.

A device of an individual enrollment signs with its own key (--key). A device
of an enrollment group signs with a key derived from the group's key; give the
group's key with --group-key and the command derives the device's.

Unless given, the ID scope, the endpoint and the CA come from the data
directory of a local ` + "`usher serve`" + ` (--data-dir, else USHER_DATA_DIR, else
./usher-data): its ID scope, the address it listens on for the transport
(checking its certificate for its host name), and its CA file.`,
		Example: `  # a device of an individual enrollment, against the local server
  usher device register --registration-id dev-001 --key "$DEVICE_KEY"

  # a device of an enrollment group, over MQTT, with a payload for the allocation
  usher device register --registration-id sensor-042 --group-key "$GROUP_KEY" \
    --transport mqtt --payload '{"modelId":"dtmi:example:thermostat;1"}'

  # any DPS: name it and the CA to trust
  usher device register --id-scope 0ne00000A0A --registration-id dev-001 --key "$DEVICE_KEY" \
    --endpoint dps.example.com --ca-file ca.pem --payload @payload.json -o table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd.Context(), e)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.idScope, "id-scope", "", "ID scope of the DPS (default: the data directory's)")
	idFlag(cmd, &f.regID, "registration-id", "registration ID of the device (alias --rid)")
	fs.StringVar(&f.key, "key", "", "the device's symmetric key, base64")
	fs.StringVar(&f.groupKey, "group-key", "", "the enrollment group's symmetric key, base64; the device key is derived from it")
	fs.Var(&f.transport, "transport", "https or mqtt")
	fs.StringVar(&f.payload, "payload", "", "JSON object sent as the registration payload, or @file")
	fs.StringVar(&f.endpoint, "endpoint", "", "DPS host[:port] (port 443 for https, 8883 for mqtt; default: the local server's address)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of a CA to trust besides the system roots (default: the data directory's CA)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory of a local Usher server to take defaults from (env USHER_DATA_DIR; default ./usher-data)")
	fs.VarP(&f.out, "output", "o", "output format: json or table")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up when the registration has not finished after this long")
	cmd.Flags().SetNormalizeFunc(withAliases(map[string]string{"rid": "registration-id"}))
	return cmd
}

func (f *deviceRegisterFlags) run(ctx context.Context, e *env) error {
	switch {
	case f.key != "" && f.groupKey != "":
		return errors.New("give --key or --group-key, not both")
	case f.key == "" && f.groupKey == "":
		return errors.New("give --key (the device's key) or --group-key (its enrollment group's key)")
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, not %s", f.timeout)
	}
	opts, err := f.options(ctx, e)
	if err != nil {
		return err
	}
	last := ""
	opts.Progress = func(status string) {
		if status != last && status != deviceclient.StatusAssigned {
			fmt.Fprintf(e.stderr, "%s…\n", status)
		}
		last = status
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	res, err := deviceclient.Register(ctx, opts)
	var outcome *deviceclient.RegistrationError
	if err != nil && !errors.As(err, &outcome) {
		return err
	}
	if perr := f.print(e, res); perr != nil {
		return perr
	}
	return err
}

// options resolves the flags, and the data directory for what they leave
// out, into the client's options.
func (f *deviceRegisterFlags) options(ctx context.Context, e *env) (deviceclient.Options, error) {
	opts := deviceclient.Options{
		Endpoint: f.endpoint, IDScope: f.idScope, RegistrationID: f.regID, Key: f.key, GroupKey: f.groupKey,
		Transport: f.transport.value,
	}
	caFile := f.caFile
	if opts.IDScope == "" || opts.Endpoint == "" || caFile == "" {
		// A --store postgres server is found through USHER_STORE and
		// USHER_POSTGRES_URL.
		loc := storeFlags{}.locate(f.dataDir, e)
		dir := loc.DataDir
		info, err := readStoreInfo(ctx, loc)
		switch {
		case err == nil:
			if err := f.fromInfo(&opts, &caFile, info, dir); err != nil {
				return opts, err
			}
		case f.dataDir != "" || opts.IDScope == "" || opts.Endpoint == "":
			return opts, fmt.Errorf("give --id-scope and --endpoint, or point --data-dir at a server's data directory: %w", err)
		}
	}
	if caFile != "" {
		pool, err := caPool(caFile)
		if err != nil {
			return opts, err
		}
		opts.RootCAs = pool
	}
	if f.payload != "" {
		p, err := payloadArg(f.payload)
		if err != nil {
			return opts, err
		}
		opts.Payload = p
	}
	return opts, nil
}

// fromInfo fills what the flags left out from a server's data directory:
// its ID scope, the address it listens on for the transport (with its host
// name for the certificate check), and its CA file.
func (f *deviceRegisterFlags) fromInfo(opts *deviceclient.Options, caFile *string, info Info, dir string) error {
	if opts.IDScope == "" {
		opts.IDScope = info.IDScope
	}
	if *caFile == "" {
		*caFile = info.CAFile
	}
	if opts.Endpoint != "" {
		return nil
	}
	listen := info.HTTPSAddr
	if opts.Transport == deviceclient.MQTT {
		listen = info.MQTTAddr
	}
	if _, port, err := net.SplitHostPort(listen); err != nil || port == "0" {
		return fmt.Errorf("data directory %s: the server recorded no %s address to dial (%q); is it serving %s? Pass --endpoint", dir, opts.Transport, listen, opts.Transport)
	}
	addr, err := localAddr(listen)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	opts.Endpoint, opts.ServerName = addr, info.HostName
	return nil
}

// caPool is the system roots plus the certificates of a PEM file.
func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// payloadArg reads --payload: a JSON object, inline or from a file after
// '@', compacted.
func payloadArg(v string) (json.RawMessage, error) {
	data := []byte(v)
	if path, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--payload: %w", err)
		}
		data = b
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, errors.New(`--payload must be a JSON object such as {"modelId":"dtmi:example;1"}`)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("--payload is not valid JSON: data after the object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, bytes.TrimSpace(data)); err != nil {
		return nil, fmt.Errorf("--payload is not valid JSON: %v", err)
	}
	return b.Bytes(), nil
}

// print writes the outcome as JSON or as a table.
func (f *deviceRegisterFlags) print(e *env, r deviceclient.Result) error {
	if f.out == outputTable {
		return writeTable(e.stdout, table{
			header: []string{"RegistrationId", "DeviceId", "Status", "Substatus", "AssignedHub"},
			rows:   [][]string{{r.RegistrationID, r.DeviceID, r.Status, r.Substatus, r.AssignedHub}},
		})
	}
	return printJSON(e, r)
}
