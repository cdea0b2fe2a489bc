package main

// `usher enrollment edge-config` and `usher enrollment-group edge-config`
// print the provisioning part of an IoT Edge device's /etc/aziot/config.toml
// (hub-protocol.md §8.1; the keys are those of aziot-edge's
// edgelet/contrib/config/linux/template.toml): DPS with symmetric-key
// attestation against this Usher, and the trust bundle pointing at Usher's
// CA. There is no such command in az.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// defaultDeviceCAPath is where the printed config expects Usher's CA on the
// device.
const defaultDeviceCAPath = "/etc/aziot/usher-ca.pem"

// edgeConfig is the printed document. The JSON names are aziot's TOML keys.
type edgeConfig struct {
	TrustBundleCert string           `json:"trust_bundle_cert,omitempty" toml:"trust_bundle_cert,omitempty"`
	Provisioning    edgeProvisioning `json:"provisioning" toml:"provisioning"`
}

type edgeProvisioning struct {
	Source         string          `json:"source" toml:"source"`
	GlobalEndpoint string          `json:"global_endpoint" toml:"global_endpoint"`
	IDScope        string          `json:"id_scope" toml:"id_scope"`
	Attestation    edgeAttestation `json:"attestation" toml:"attestation"`
}

type edgeAttestation struct {
	Method         string  `json:"method" toml:"method"`
	RegistrationID string  `json:"registration_id" toml:"registration_id"`
	SymmetricKey   edgeKey `json:"symmetric_key" toml:"symmetric_key"`
}

// edgeKey is aziot's key reference: the key inline, or a URI of a file
// holding it.
type edgeKey struct {
	Value string `json:"value,omitempty" toml:"value,omitempty"`
	URI   string `json:"uri,omitempty" toml:"uri,omitempty"`
}

// edgeFlags are edge-config's own flags.
type edgeFlags struct {
	idScope        string
	globalEndpoint string
	caOut          string
	deviceCAPath   string
	keyFile        string
	format         string
}

func (f *edgeFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.idScope, "id-scope", "", "ID scope to put in the config (default: the local server's, from its data directory; required with --login)")
	fs.StringVar(&f.globalEndpoint, "global-endpoint", "", "DPS endpoint the device dials, https://host[:port]/ (default: the local server's host name and HTTPS port, or the connection string's HostName)")
	fs.StringVar(&f.caOut, "ca-out", "", "also write Usher's CA certificate (PEM) to this file, to copy to the device")
	fs.StringVar(&f.deviceCAPath, "device-ca-path", defaultDeviceCAPath, "where the CA will be on the device (trust_bundle_cert)")
	fs.StringVar(&f.keyFile, "key-file", "", "write the device key to this absolute path (mode 0600) and reference it as symmetric_key = { uri = \"file://…\" } instead of inline; the file must be at the same path on the device")
	fs.StringVarP(&f.format, "output", "o", "toml", "output format: toml (config.toml text with instructions) or json (the same keys)")
}

// edgeServer is what the config needs to know about the Usher it points at.
type edgeServer struct {
	idScope  string
	endpoint string
	caFile   string // Usher's CA on this machine; "" when unknown
	hubHost  string // "" when unknown (remote server)
	httpsPort,
	mqttPort string // "" when unknown
}

const edgeConfigLong = `Print the provisioning section of an IoT Edge device's /etc/aziot/config.toml
for this Usher: source "dps", global_endpoint, id_scope, symmetric-key
attestation with the registration ID and its key, and trust_bundle_cert
pointing at Usher's CA. Paste it into config.toml on the device (replacing
its [provisioning] section) and run ` + "`sudo iotedge config apply`" + `.

The output holds the device key: treat it as a secret. With --key-file the key
goes into a file instead and the config references it. --ca-out writes
Usher's CA to copy to the device (--device-ca-path, default
` + defaultDeviceCAPath + `); the device's host trust store needs it too, since
aziot-identityd verifies DPS and the hub with it.

Until Usher speaks AMQP, edgeAgent and edgeHub must use MQTT upstream: the
output ends with the settings to make in config.toml and in deployments.

A disabled enrollment (or group) is refused, as is one without symmetric-key
attestation; one without IoT Edge enabled gets a warning on stderr (its hub
device would have no $edgeAgent/$edgeHub modules).

Against the local server (--data-dir, or ./usher-data) the ID scope, host
name, port and CA come from what it recorded. With --login (a connection
string of another Usher or an Azure DPS) give --id-scope, and --ca-file for
the CA.

`

func enrollmentEdgeConfigCommand(c *dpsCLI) *cobra.Command {
	var id string
	var f edgeFlags
	cmd := &cobra.Command{
		Use:   "edge-config --enrollment-id ID [flags]",
		Short: "Print the IoT Edge config.toml provisioning section for an individual enrollment",
		Long:  edgeConfigLong + connectionHelp,
		Example: `  usher enrollment edge-config --enrollment-id my-edge-device --ca-out usher-ca.pem > provisioning.toml
  usher enrollment edge-config --enrollment-id my-edge-device --key-file /var/secrets/aziot/my-edge-device.key
  usher enrollment edge-config --login "$USHER_CS" --ca-file ca.pem --id-scope 0ne00000001 --enrollment-id my-edge-device`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.edgeConfig(cmd, &f, func(ctx context.Context, cl *client.Client) (string, string, error) {
				enr, err := cl.Enrollment(ctx, id)
				if err != nil {
					return "", "", err
				}
				what := fmt.Sprintf("enrollment %q", id)
				if err := c.checkEdgeSettings(what, "enrollment update --enrollment-id "+id, enr.EnrollmentSettings); err != nil {
					return "", "", err
				}
				a, err := cl.EnrollmentAttestation(ctx, id)
				if err != nil {
					return "", "", err
				}
				key, err := primaryKey(what, a)
				if err != nil {
					return "", "", err
				}
				return enr.RegistrationID, key, nil
			})
		},
	}
	idFlag(cmd, &id, "enrollment-id", "ID of the enrollment (its registration ID; alias --eid)")
	f.register(cmd)
	return cmd
}

func groupEdgeConfigCommand(c *dpsCLI) *cobra.Command {
	var id, regID string
	var f edgeFlags
	cmd := &cobra.Command{
		Use:   "edge-config --group-id ID --registration-id RID [flags]",
		Short: "Print the IoT Edge config.toml provisioning section for a device of an enrollment group",
		Long: edgeConfigLong + `The key is the device's own, derived from the group's primary key
(see compute-device-key); the group key never appears.

` + connectionHelp,
		Example: `  usher enrollment-group edge-config --group-id edge-fleet --registration-id edge-0042 --ca-out usher-ca.pem`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.edgeConfig(cmd, &f, func(ctx context.Context, cl *client.Client) (string, string, error) {
				g, err := cl.Group(ctx, id)
				if err != nil {
					return "", "", err
				}
				what := fmt.Sprintf("enrollment group %q", id)
				if err := c.checkEdgeSettings(what, "enrollment-group update --group-id "+id, g.EnrollmentSettings); err != nil {
					return "", "", err
				}
				a, err := cl.GroupAttestation(ctx, id)
				if err != nil {
					return "", "", err
				}
				groupKey, err := primaryKey(what, a)
				if err != nil {
					return "", "", err
				}
				key, err := sas.DeriveDeviceKey(groupKey, regID)
				if err != nil {
					return "", "", err
				}
				// An individual enrollment of the same registration ID
				// wins over the group when the device registers.
				_, err = cl.Enrollment(ctx, regID)
				var apiErr *client.APIError
				switch {
				case err == nil:
					c.warn("an individual enrollment %q exists; the device registers through it, with its key, not through the group", regID)
				case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
				default:
					return "", "", err
				}
				return regID, key, nil
			})
		},
	}
	idFlag(cmd, &id, "group-id", groupIDUsage)
	idFlag(cmd, &regID, "registration-id", "registration ID of the device (alias --rid)")
	f.register(cmd)
	return cmd
}

// checkEdgeSettings refuses what no device could provision with and warns
// about what an IoT Edge device would miss.
func (c *dpsCLI) checkEdgeSettings(what, update string, s wire.EnrollmentSettings) error {
	if !isSymmetric(s.Attestation) {
		t := "no"
		if s.Attestation != nil {
			t = s.Attestation.Type
		}
		return fmt.Errorf("%s uses %s attestation; edge-config writes symmetric-key attestation only", what, t)
	}
	if strings.EqualFold(s.ProvisioningStatus, "disabled") {
		return fmt.Errorf("%s is disabled: the device would be refused. Enable it first: usher %s --provisioning-status enabled", what, update)
	}
	if s.Capabilities == nil || !s.Capabilities.IoTEdge {
		c.warn("%s is not IoT Edge enabled: its hub device gets no $edgeAgent/$edgeHub modules and the runtime will not start them. Enable it: usher %s --edge-enabled true", what, update)
	}
	return nil
}

func primaryKey(what string, a wire.AttestationMechanism) (string, error) {
	if a.SymmetricKey == nil || a.SymmetricKey.PrimaryKey == nil || *a.SymmetricKey.PrimaryKey == "" {
		return "", fmt.Errorf("%s has no symmetric primary key", what)
	}
	return *a.SymmetricKey.PrimaryKey, nil
}

func (c *dpsCLI) warn(format string, args ...any) {
	fmt.Fprintf(c.e.stderr, "usher: warning: "+format+"\n", args...)
}

// edgeConfig resolves the server, reads the registration ID and key with
// fn, and prints the config.
func (c *dpsCLI) edgeConfig(cmd *cobra.Command, f *edgeFlags, fn func(context.Context, *client.Client) (regID, key string, err error)) error {
	if f.format != "toml" && f.format != "json" {
		return fmt.Errorf("--output %q: edge-config prints toml or json", f.format)
	}
	if f.keyFile != "" && !filepath.IsAbs(f.keyFile) {
		return fmt.Errorf("--key-file %q must be an absolute path: the config names the file by it on the device", f.keyFile)
	}
	if !filepath.IsAbs(f.deviceCAPath) {
		return fmt.Errorf("--device-ca-path %q must be an absolute path", f.deviceCAPath)
	}
	ctx := cmd.Context()
	srv, err := c.edgeServer(ctx, f)
	if err != nil {
		return err
	}
	if f.caOut != "" && srv.caFile == "" {
		return errors.New("--ca-out: Usher's CA is not known here (the server uses --tls-cert, or this is a remote server); pass --ca-file")
	}
	var regID, key string
	if err := c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
		regID, key, err = fn(ctx, cl)
		return err
	}); err != nil {
		return err
	}
	conf := edgeConfig{Provisioning: edgeProvisioning{
		Source: "dps", GlobalEndpoint: srv.endpoint, IDScope: srv.idScope,
		Attestation: edgeAttestation{Method: "symmetric_key", RegistrationID: regID, SymmetricKey: edgeKey{Value: key}},
	}}
	if srv.caFile != "" || cmd.Flags().Changed("device-ca-path") {
		conf.TrustBundleCert = fileURI(f.deviceCAPath)
	}
	if f.caOut != "" {
		pem, err := os.ReadFile(srv.caFile)
		if err != nil {
			return fmt.Errorf("CA file: %w", err)
		}
		if err := os.WriteFile(f.caOut, pem, 0o644); err != nil {
			return fmt.Errorf("--ca-out: %w", err)
		}
	}
	if f.keyFile != "" {
		if err := writeSecretFile(f.keyFile, []byte(key)); err != nil {
			return fmt.Errorf("--key-file: %w", err)
		}
		conf.Provisioning.Attestation.SymmetricKey = edgeKey{URI: fileURI(f.keyFile)}
	}
	c.warnPorts(srv)
	if f.format == "json" {
		return printJSON(c.e, conf)
	}
	_, err = fmt.Fprint(c.e.stdout, conf.toml(srv, f))
	return err
}

// edgeServer finds the ID scope, endpoint and CA: from the local server's
// store unless a connection string is given, then the flags over them.
func (c *dpsCLI) edgeServer(ctx context.Context, f *edgeFlags) (edgeServer, error) {
	var srv edgeServer
	cs, err := c.conn.connection(c.e, dpsTarget)
	if err != nil {
		return srv, err
	}
	if cs == "" {
		info, err := readStoreInfo(ctx, c.conn.where.locate(c.conn.dataDir, c.e))
		if err != nil {
			return srv, fmt.Errorf("no local Usher to read the ID scope from (pass --login with --id-scope, or --data-dir): %w", err)
		}
		_, srv.httpsPort, _ = net.SplitHostPort(info.HTTPSAddr)
		_, srv.mqttPort, _ = net.SplitHostPort(info.MQTTAddr)
		srv.idScope, srv.caFile, srv.hubHost = info.IDScope, info.CAFile, info.HubHostName
		srv.endpoint = "https://" + hostPort(info.HostName, srv.httpsPort, "443") + "/"
	} else {
		parsed, err := sas.ParseConnectionString(cs)
		if err != nil {
			return srv, fmt.Errorf("connection string: %w", err)
		}
		srv.endpoint = "https://" + parsed.HostName + "/"
	}
	if c.conn.caFile != "" {
		srv.caFile = c.conn.caFile
	}
	if f.idScope != "" {
		srv.idScope = f.idScope
	}
	if f.globalEndpoint != "" {
		u, err := url.Parse(f.globalEndpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" {
			return srv, fmt.Errorf("--global-endpoint %q is not an https://host[:port]/ URL", f.globalEndpoint)
		}
		srv.endpoint = "https://" + u.Host + "/"
		srv.httpsPort = u.Port()
	}
	switch {
	case srv.idScope == "":
		return srv, errors.New("the ID scope is not known from a connection string: pass --id-scope (`usher info` on the server prints it)")
	case strings.ContainsAny(srv.idScope, " \t\r\n\"'\\/"):
		return srv, fmt.Errorf("--id-scope %q is not an ID scope", srv.idScope)
	}
	return srv, nil
}

// hostPort is host with ":port" unless port is the default.
func hostPort(host, port, def string) string {
	if port == "" || port == def {
		return host
	}
	return net.JoinHostPort(host, port)
}

// warnPorts says when IoT Edge cannot reach the hub: aziot-identityd calls
// the hub's REST API on https://{assignedHub}/ (port 443) and edgeAgent and
// edgeHub connect over MQTT to port 8883; neither port can be configured.
func (c *dpsCLI) warnPorts(srv edgeServer) {
	if srv.httpsPort != "" && srv.httpsPort != "443" {
		c.warn("Usher serves HTTPS on port %s, but IoT Edge calls the hub's REST API on port 443: serve (or forward) port 443 for the hub host name", srv.httpsPort)
	}
	if srv.mqttPort != "" && srv.mqttPort != "8883" {
		c.warn("Usher serves MQTT on port %s, but edgeAgent and edgeHub connect to port 8883: serve (or forward) port 8883 for the hub host name", srv.mqttPort)
	}
}

func fileURI(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// writeSecretFile writes data to path readable by its owner only.
func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// mqttUpstreamNote is the comment on UpstreamProtocol every output ends
// with.
const mqttUpstreamNote = `
# Usher does not speak AMQP yet: edgeAgent and edgeHub must reach the hub over
# MQTT (port 8883). In config.toml, under the existing [agent] table:
#
#   [agent.env]
#   UpstreamProtocol = "Mqtt"
#
# and in every deployment, on both system modules (in $edgeAgent's desired
# properties, under systemModules):
#
#   "edgeAgent": { ..., "env": { "UpstreamProtocol": { "value": "Mqtt" } } },
#   "edgeHub":   { ..., "env": { "UpstreamProtocol": { "value": "Mqtt" } } }
`

// toml renders the config with the instructions an operator needs.
func (conf edgeConfig) toml(srv edgeServer, f *edgeFlags) string {
	var b strings.Builder
	p := conf.Provisioning
	a := p.Attestation
	fmt.Fprintf(&b, "# IoT Edge provisioning through Usher for registration ID %s.\n", a.RegistrationID)
	b.WriteString("# Put this into /etc/aziot/config.toml on the device, replacing its [provisioning]\n")
	b.WriteString("# section, then run: sudo iotedge config apply\n")
	if a.SymmetricKey.Value != "" {
		b.WriteString("# It holds the device's key: keep the file private (sudo chmod 0600).\n")
	}
	b.WriteString("\n")
	switch {
	case conf.TrustBundleCert != "":
		src := "usher-ca.pem"
		if f.caOut != "" {
			src = filepath.Base(f.caOut)
		}
		b.WriteString("# Usher's CA signed its DPS and hub certificates. Copy it to the device (--ca-out\n")
		b.WriteString("# writes it) and add it to the host trust store too, which aziot-identityd uses\n")
		b.WriteString("# to reach DPS and the hub:\n")
		fmt.Fprintf(&b, "#   sudo install -m 0644 %s %s\n", src, f.deviceCAPath)
		fmt.Fprintf(&b, "#   sudo install -m 0644 %s /usr/local/share/ca-certificates/usher-ca.crt\n", src)
		b.WriteString("#   sudo update-ca-certificates\n")
		b.WriteString("# trust_bundle_cert is a top-level key: keep it above every [table] in config.toml.\n")
		fmt.Fprintf(&b, "trust_bundle_cert = %s\n", tomlString(conf.TrustBundleCert))
	default:
		b.WriteString("# Usher's CA is not known here. If its certificate is not from a CA the device\n")
		b.WriteString("# already trusts, copy the CA to the device and to its host trust store, and set\n")
		fmt.Fprintf(&b, "# (above every [table]):\n# trust_bundle_cert = %s\n", tomlString(fileURI(f.deviceCAPath)))
	}
	b.WriteString("\n[provisioning]\n")
	fmt.Fprintf(&b, "source = %s\n", tomlString(p.Source))
	fmt.Fprintf(&b, "global_endpoint = %s\n", tomlString(p.GlobalEndpoint))
	fmt.Fprintf(&b, "id_scope = %s\n", tomlString(p.IDScope))
	b.WriteString("\n[provisioning.attestation]\n")
	fmt.Fprintf(&b, "method = %s\n", tomlString(a.Method))
	fmt.Fprintf(&b, "registration_id = %s\n", tomlString(a.RegistrationID))
	if a.SymmetricKey.URI != "" {
		b.WriteString("# The key file must be at this path on the device, readable by aziot-keyd.\n")
		fmt.Fprintf(&b, "symmetric_key = { uri = %s }\n", tomlString(a.SymmetricKey.URI))
	} else {
		fmt.Fprintf(&b, "symmetric_key = { value = %s }\n", tomlString(a.SymmetricKey.Value))
	}
	if srv.hubHost != "" {
		fmt.Fprintf(&b, "\n# The device is assigned to the hub %s: it must resolve to Usher from\n# the device, on ports 443 (HTTPS) and 8883 (MQTT).\n", srv.hubHost)
	}
	b.WriteString(mqttUpstreamNote)
	return b.String()
}
