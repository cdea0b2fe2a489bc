package main

// `usher enrollment …` mirrors `az iot dps enrollment …` of the Azure CLI
// IoT extension (azext_iot/operations/dps.py, azext_iot/_params.py): the
// same verbs, flag names and short aliases, and the same read-modify-write
// update. The settings flags defined here are shared with
// `usher enrollment-group …`.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/wire"
)

// enrollmentAliases are az's short and alternative flag names for the
// individual enrollment commands.
var enrollmentAliases = withAliases(map[string]string{"eid": "enrollment-id"})

func enrollmentCommand(e *env) *cobra.Command {
	c := newDPSCLI(e)
	cmd := &cobra.Command{
		Use:   "enrollment",
		Short: "Manage individual enrollments (az iot dps enrollment)",
		Long: `Create, show, list, update and delete individual enrollments, and show or
delete their devices' registration records, through the DPS service API, as
` + "`az iot dps enrollment`" + ` does against Azure.

` + connectionHelp,
	}
	c.register(cmd)
	cmd.SetGlobalNormalizationFunc(enrollmentAliases)
	cmd.AddCommand(
		enrollmentCreateCommand(c),
		enrollmentShowCommand(c),
		enrollmentListCommand(c),
		enrollmentUpdateCommand(c),
		enrollmentDeleteCommand(c),
		enrollmentRegistrationCommand(c),
		enrollmentEdgeConfigCommand(c),
		enrollmentExportCommand(c),
		enrollmentImportCommand(c),
	)
	return cmd
}

// connectionHelp explains where the commands find the DPS.
const connectionHelp = `The DPS is found, first match wins: --login (or --connection-string), a
service connection string, dialled at its HostName on port 443 or at
--address; --data-dir, the data directory of a local ` + "`usher serve`" + `, whose
owner policy, CA and listening address are used; USHER_CONNECTION_STRING;
USHER_DATA_DIR, else ./usher-data.`

func enrollmentCreateCommand(c *dpsCLI) *cobra.Command {
	var id string
	var s settingsFlags
	cmd := &cobra.Command{
		Use:   "create --enrollment-id ID [flags]",
		Short: "Create an individual enrollment (symmetric key; keys are generated unless given)",
		Example: `  usher enrollment create --enrollment-id dev-001
  usher enrollment create --enrollment-id dev-002 --device-id thermostat-2 \
    --initial-twin-tags '{"environment":"test"}' --provisioning-status disabled --show-keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := wire.IndividualEnrollment{RegistrationID: id}
			if err := s.applyEnrollment(cmd.Flags(), &e); err != nil {
				return err
			}
			if err := s.applyCreate(cmd.Flags(), &e.EnrollmentSettings); err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				out, err := cl.PutEnrollment(ctx, e, "")
				if err != nil {
					return err
				}
				return c.printEnrollment(out, s.showKeys)
			})
		},
	}
	idFlag(cmd, &id, "enrollment-id", "ID of the individual enrollment (its registration ID; alias --eid)")
	s.register(cmd.Flags(), forCreate, forEnrollment)
	return cmd
}

func enrollmentShowCommand(c *dpsCLI) *cobra.Command {
	var id string
	var showKeys bool
	cmd := &cobra.Command{
		Use:   "show --enrollment-id ID",
		Short: "Show an individual enrollment (keys only with --show-keys)",
		Example: `  usher enrollment show --enrollment-id dev-001
  usher enrollment show --enrollment-id dev-001 --show-keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				e, err := withKeys(ctx, id, showKeys, cl.Enrollment, cl.EnrollmentAttestation, func(e *wire.IndividualEnrollment) *wire.AttestationMechanism { return e.Attestation })
				if err != nil {
					return err
				}
				return c.printEnrollment(e, showKeys)
			})
		},
	}
	idFlag(cmd, &id, "enrollment-id", "ID of the individual enrollment (alias --eid)")
	showKeysFlag(cmd.Flags(), &showKeys)
	return cmd
}

func enrollmentListCommand(c *dpsCLI) *cobra.Command {
	var l listFlags
	cmd := &cobra.Command{
		Use:   "list [--top N] [--where CONDITION]",
		Short: "List individual enrollments, keys masked",
		Example: `  usher enrollment list
  usher enrollment list --top 10 -o table
  usher enrollment list --where "initialTwin.tags.environment = 'test'"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := l.check(); err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				q := l.query("enrollments")
				items, err := allPages(ctx, l.top, func(ctx context.Context, size int, cont string) ([]wire.IndividualEnrollment, string, error) {
					return cl.QueryEnrollments(ctx, q, size, cont)
				})
				if err != nil {
					return err
				}
				return c.print(items, func() table { return enrollmentTable(items...) })
			})
		},
	}
	l.register(cmd.Flags(), true)
	return cmd
}

func enrollmentUpdateCommand(c *dpsCLI) *cobra.Command {
	var id string
	var s settingsFlags
	cmd := &cobra.Command{
		Use:   "update --enrollment-id ID [flags]",
		Short: "Change an individual enrollment; what no flag names is kept, keys included",
		Example: `  usher enrollment update --enrollment-id dev-001 --initial-twin-tags '{"environment":"prod"}'
  usher enrollment update --enrollment-id dev-001 --provisioning-status disabled --etag '"3f2a…"'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := s.checkUpdate(cmd.Flags()); err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				e, err := withKeys(ctx, id, true, cl.Enrollment, cl.EnrollmentAttestation, func(e *wire.IndividualEnrollment) *wire.AttestationMechanism { return e.Attestation })
				if err != nil {
					return err
				}
				e.RegistrationState = nil
				if err := s.applyEnrollment(cmd.Flags(), &e); err != nil {
					return err
				}
				if err := s.applyUpdate(cmd.Flags(), &e.EnrollmentSettings); err != nil {
					return err
				}
				out, err := cl.PutEnrollment(ctx, e, s.ifMatch(e.ETag))
				if err != nil {
					return err
				}
				return c.printEnrollment(out, s.showKeys)
			})
		},
	}
	idFlag(cmd, &id, "enrollment-id", "ID of the individual enrollment (alias --eid)")
	s.register(cmd.Flags(), forUpdate, forEnrollment)
	return cmd
}

func enrollmentDeleteCommand(c *dpsCLI) *cobra.Command {
	var id, etag string
	cmd := &cobra.Command{
		Use:   "delete --enrollment-id ID [--etag ETAG]",
		Short: "Delete an individual enrollment (its device's registration record stays)",
		Example: `  usher enrollment delete --enrollment-id dev-001
  usher enrollment delete --enrollment-id dev-001 --etag '"3f2a…"'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				return cl.DeleteEnrollment(ctx, id, etag)
			})
		},
	}
	idFlag(cmd, &id, "enrollment-id", "ID of the individual enrollment (alias --eid)")
	etagFlag(cmd.Flags(), &etag)
	return cmd
}

// withClient connects and runs fn with the command's context.
func (c *dpsCLI) withClient(cmd *cobra.Command, fn func(context.Context, *client.Client) error) error {
	cl, err := c.conn.dial(cmd.Context(), c.e)
	if err != nil {
		return err
	}
	return fn(cmd.Context(), cl)
}

func (c *dpsCLI) printEnrollment(e wire.IndividualEnrollment, showKeys bool) error {
	if !showKeys {
		maskKeys(e.Attestation)
	}
	return c.print(e, func() table { return enrollmentTable(e) })
}

// maskKeys nulls the symmetric keys, as GET and query answers carry them.
func maskKeys(a *wire.AttestationMechanism) {
	if a != nil && a.SymmetricKey != nil {
		a.SymmetricKey.PrimaryKey, a.SymmetricKey.SecondaryKey = nil, nil
	}
}

// withKeys reads a record and, when keys is set and it has symmetric keys,
// fills them in through its attestationmechanism endpoint (GET masks them).
func withKeys[T any](ctx context.Context, id string, keys bool, get func(context.Context, string) (T, error), attestation func(context.Context, string) (wire.AttestationMechanism, error), mech func(*T) *wire.AttestationMechanism) (T, error) {
	rec, err := get(ctx, id)
	if err != nil || !keys || !isSymmetric(mech(&rec)) {
		return rec, err
	}
	a, err := attestation(ctx, id)
	if err != nil {
		return rec, err
	}
	*mech(&rec) = a
	return rec, nil
}

func isSymmetric(a *wire.AttestationMechanism) bool {
	return a != nil && strings.EqualFold(a.Type, "symmetricKey")
}

// idFlag adds a required string flag naming the record a command acts on.
func idFlag(cmd *cobra.Command, dst *string, name, usage string) {
	cmd.Flags().StringVar(dst, name, "", usage)
	_ = cmd.MarkFlagRequired(name)
}

func etagFlag(fs *pflag.FlagSet, dst *string) {
	fs.StringVarP(dst, "etag", "e", "", "etag the record must still have (If-Match); without it the change is unconditional")
}

func showKeysFlag(fs *pflag.FlagSet, dst *bool) {
	fs.BoolVar(dst, "show-keys", false, "include the symmetric keys in the output (alias --keys)")
}

// listFlags are list's paging and filter flags.
type listFlags struct {
	top   int
	where string
}

func (l *listFlags) register(fs *pflag.FlagSet, where bool) {
	fs.IntVar(&l.top, "top", -1, "maximum number of items to return; -1 for all")
	if where {
		fs.StringVar(&l.where, "where", "", `query condition, as in "SELECT * FROM … WHERE <condition>" (an Usher addition)`)
	}
}

func (l *listFlags) check() error {
	if l.top < -1 {
		return fmt.Errorf("--top must be -1 (all) or a number of items, not %d", l.top)
	}
	return nil
}

// query builds the query specification for collection.
func (l *listFlags) query(from string) string {
	q := "SELECT * FROM " + from
	if w := strings.TrimSpace(l.where); w != "" {
		q += " WHERE " + w
	}
	return q
}

// allPages follows continuation tokens until top items (top < 0: all) are
// collected or no page is left. page gets the number of items still wanted
// (0 when unbounded) and the token.
func allPages[T any](ctx context.Context, top int, page func(ctx context.Context, size int, continuation string) ([]T, string, error)) ([]T, error) {
	out := []T{}
	seen := map[string]bool{}
	cont := ""
	for top < 0 || len(out) < top {
		size := 0
		if top >= 0 {
			size = top - len(out)
		}
		items, next, err := page(ctx, size, cont)
		if err != nil {
			return nil, err
		}
		if top >= 0 && len(items) > top-len(out) {
			items = items[:top-len(out)]
		}
		out = append(out, items...)
		if next == "" {
			break
		}
		if seen[next] {
			return nil, errors.New("the server repeated a continuation token; stopping")
		}
		seen[next], cont = true, next
	}
	return out, nil
}

// Which settings flags a command takes.
type (
	settingsMode bool
	recordKind   bool
)

const (
	forCreate     settingsMode = false
	forUpdate     settingsMode = true
	forEnrollment recordKind   = false
	forGroup      recordKind   = true
)

// settingsFlags are the create and update flags of enrollments and groups.
type settingsFlags struct {
	attestationType    enumFlag
	primaryKey         string
	secondaryKey       string
	deviceID           string
	deviceInfo         string
	edgeEnabled        bool
	tags               string
	desired            string
	provisioningStatus enumFlag
	allocationPolicy   enumFlag
	iotHubs            string
	reprovisionPolicy  enumFlag
	webhookURL         string
	apiVersion         string
	etag               string
	showKeys           bool
}

// ifMatch is the If-Match an update sends: the --etag the user gave, else
// the etag of the record the update read, so a concurrent change is never
// silently overwritten.
func (s *settingsFlags) ifMatch(read string) string {
	if s.etag != "" {
		return s.etag
	}
	return read
}

func (s *settingsFlags) register(fs *pflag.FlagSet, mode settingsMode, kind recordKind) {
	s.attestationType = enumFlag{allowed: []string{"symmetrickey", "x509", "tpm"}}
	s.provisioningStatus = enumFlag{allowed: []string{"enabled", "disabled"}}
	s.allocationPolicy = enumFlag{allowed: []string{"hashed", "geolatency", "static", "custom"}}
	s.reprovisionPolicy = enumFlag{allowed: []string{"reprovisionandmigratedata", "reprovisionandresetdata", "never"}}
	if mode == forCreate {
		s.attestationType.value = "symmetrickey"
	}
	fs.Var(&s.attestationType, "attestation-type", "attestation mechanism: symmetrickey (x509 and tpm are not supported yet; alias --at)")
	fs.StringVar(&s.primaryKey, "primary-key", "", "primary symmetric key, base64 of 16 to 64 bytes; generated on create when omitted (alias --pk)")
	fs.StringVar(&s.secondaryKey, "secondary-key", "", "secondary symmetric key; generated on create when omitted (alias --sk)")
	if kind == forEnrollment {
		fs.StringVar(&s.deviceID, "device-id", "", "IoT Hub device ID to provision as (default: the registration ID)")
		fs.StringVar(&s.deviceInfo, "device-information", "", "optional device information: a JSON object or @file (alias --device-info)")
	}
	fs.BoolVar(&s.edgeEnabled, "edge-enabled", false, "the device is an IoT Edge device (--edge-enabled, --edge-enabled true|false; alias --ee)")
	fs.StringVar(&s.tags, "initial-twin-tags", "", `initial twin tags: a JSON object or @file; "" clears (alias --tags)`)
	fs.StringVar(&s.desired, "initial-twin-properties", "", `initial twin desired properties: a JSON object or @file; "" clears (alias --props)`)
	fs.Var(&s.provisioningStatus, "provisioning-status", "enabled or disabled (alias --ps)")
	fs.Var(&s.allocationPolicy, "allocation-policy", "hashed, geolatency, static or custom (alias --ap)")
	fs.StringVar(&s.iotHubs, "iot-hubs", "", "host names of the IoT hubs to allocate to, space or comma separated (alias --ih)")
	fs.Var(&s.reprovisionPolicy, "reprovision-policy", "reprovisionandmigratedata, reprovisionandresetdata or never (alias --rp)")
	fs.StringVar(&s.webhookURL, "webhook-url", "", "https URL of the custom allocation webhook, with --allocation-policy custom (alias --wh)")
	fs.StringVar(&s.apiVersion, "api-version", "", "API version sent to the custom allocation webhook (alias --av)")
	if mode == forUpdate {
		etagFlag(fs, &s.etag)
	}
	showKeysFlag(fs, &s.showKeys)
}

// checkUpdate refuses flag values an update cannot use before any call is
// made: an attestation type Usher lacks, or JSON that is not an object.
func (s *settingsFlags) checkUpdate(fs *pflag.FlagSet) error {
	if err := s.checkAttestationType(); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{
		{"initial-twin-tags", s.tags}, {"initial-twin-properties", s.desired}, {"device-information", s.deviceInfo},
	} {
		if fs.Changed(f.name) {
			if _, err := jsonObject(f.name, f.value); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *settingsFlags) checkAttestationType() error {
	if t := s.attestationType.value; t == "x509" || t == "tpm" {
		return fmt.Errorf("--attestation-type %s is not supported yet; Usher supports symmetrickey only", t)
	}
	return nil
}

// applyEnrollment sets the fields only individual enrollments have.
func (s *settingsFlags) applyEnrollment(fs *pflag.FlagSet, e *wire.IndividualEnrollment) error {
	if fs.Changed("device-id") {
		e.DeviceID = s.deviceID
	}
	if fs.Changed("device-information") {
		info, err := jsonObject("device-information", s.deviceInfo)
		if err != nil {
			return err
		}
		e.OptionalDeviceInformation = info
	}
	return nil
}

// applyCreate fills a new record's settings from the flags, with az's
// defaults: no edge, an empty initial twin, reprovision-and-migrate.
func (s *settingsFlags) applyCreate(fs *pflag.FlagSet, set *wire.EnrollmentSettings) error {
	set.Attestation = &wire.AttestationMechanism{}
	set.Capabilities = &wire.Capabilities{}
	set.InitialTwin = &wire.InitialTwin{Tags: map[string]any{}, Properties: &wire.InitialTwinProperties{Desired: map[string]any{}}}
	set.ReprovisionPolicy = &wire.ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
	return s.apply(fs, set, true)
}

// applyUpdate changes what the flags name in a record read from the server,
// and drops the fields the server owns.
func (s *settingsFlags) applyUpdate(fs *pflag.FlagSet, set *wire.EnrollmentSettings) error {
	set.ETag, set.CreatedDateTimeUTC, set.LastUpdatedDateTimeUTC = "", "", ""
	return s.apply(fs, set, false)
}

func (s *settingsFlags) apply(fs *pflag.FlagSet, set *wire.EnrollmentSettings, create bool) error {
	if err := s.applyAttestation(fs, set, create); err != nil {
		return err
	}
	if fs.Changed("edge-enabled") {
		set.Capabilities = &wire.Capabilities{IoTEdge: s.edgeEnabled}
	}
	if fs.Changed("initial-twin-tags") || fs.Changed("initial-twin-properties") {
		if set.InitialTwin == nil {
			set.InitialTwin = &wire.InitialTwin{}
		}
		if set.InitialTwin.Properties == nil {
			set.InitialTwin.Properties = &wire.InitialTwinProperties{}
		}
	}
	if fs.Changed("initial-twin-tags") {
		tags, err := jsonObject("initial-twin-tags", s.tags)
		if err != nil {
			return err
		}
		set.InitialTwin.Tags = tags
	}
	if fs.Changed("initial-twin-properties") {
		desired, err := jsonObject("initial-twin-properties", s.desired)
		if err != nil {
			return err
		}
		set.InitialTwin.Properties.Desired = desired
	}
	if fs.Changed("provisioning-status") {
		set.ProvisioningStatus = s.provisioningStatus.value
	}
	if fs.Changed("reprovision-policy") {
		set.ReprovisionPolicy = reprovisionPolicy(s.reprovisionPolicy.value)
	}
	if fs.Changed("iot-hubs") {
		set.IoTHubs = strings.FieldsFunc(s.iotHubs, func(r rune) bool { return r == ' ' || r == ',' })
		set.IoTHubHostName = ""
	}
	if fs.Changed("allocation-policy") {
		set.AllocationPolicy = s.allocationPolicy.value
	}
	return s.applyCustomAllocation(fs, set)
}

func (s *settingsFlags) applyAttestation(fs *pflag.FlagSet, set *wire.EnrollmentSettings, create bool) error {
	if err := s.checkAttestationType(); err != nil {
		return err
	}
	if create || fs.Changed("attestation-type") && !isSymmetric(set.Attestation) {
		set.Attestation = &wire.AttestationMechanism{Type: "symmetricKey", SymmetricKey: &wire.SymmetricKeyAttestation{}}
	}
	if set.Attestation == nil {
		set.Attestation = &wire.AttestationMechanism{Type: "symmetricKey"}
	}
	if fs.Changed("primary-key") || fs.Changed("secondary-key") {
		if !isSymmetric(set.Attestation) {
			return fmt.Errorf("--primary-key and --secondary-key apply to symmetric key attestation only, not %s", set.Attestation.Type)
		}
		if set.Attestation.SymmetricKey == nil {
			set.Attestation.SymmetricKey = &wire.SymmetricKeyAttestation{}
		}
		if fs.Changed("primary-key") {
			set.Attestation.SymmetricKey.PrimaryKey = &s.primaryKey
		}
		if fs.Changed("secondary-key") {
			set.Attestation.SymmetricKey.SecondaryKey = &s.secondaryKey
		}
	}
	return nil
}

// applyCustomAllocation sets the webhook of the custom allocation policy,
// keeping what the record had for a flag not given.
func (s *settingsFlags) applyCustomAllocation(fs *pflag.FlagSet, set *wire.EnrollmentSettings) error {
	if !fs.Changed("webhook-url") && !fs.Changed("api-version") {
		return nil
	}
	if !strings.EqualFold(set.AllocationPolicy, "custom") {
		return errors.New("--webhook-url and --api-version apply only with --allocation-policy custom")
	}
	def := wire.CustomAllocationDefinition{}
	if set.CustomAllocationDefinition != nil {
		def = *set.CustomAllocationDefinition
	}
	if fs.Changed("webhook-url") {
		def.WebhookURL = s.webhookURL
	}
	if fs.Changed("api-version") {
		def.APIVersion = s.apiVersion
	}
	set.CustomAllocationDefinition = &def
	return nil
}

// reprovisionPolicy maps az's --reprovision-policy names to the two flags.
func reprovisionPolicy(name string) *wire.ReprovisionPolicy {
	switch name {
	case "reprovisionandresetdata":
		return &wire.ReprovisionPolicy{UpdateHubAssignment: true}
	case "never":
		return &wire.ReprovisionPolicy{}
	}
	return &wire.ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
}

// jsonObject reads a flag's JSON object: inline, or from a file after '@'.
// "" is the empty object (az clears a collection that way).
func jsonObject(flag, v string) (map[string]any, error) {
	data := []byte(v)
	if path, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		data = b
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("--%s is not valid JSON: %v", flag, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("--%s is not valid JSON: data after the object", flag)
	}
	obj, ok := out.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("--%s must be a JSON object such as {\"key\":\"value\"}", flag)
	}
	return obj, nil
}

// enumFlag is a string flag limited to a few values, matched
// case-insensitively and kept in lower case.
type enumFlag struct {
	allowed []string
	value   string
}

func (f *enumFlag) String() string { return f.value }
func (f *enumFlag) Type() string   { return "string" }

func (f *enumFlag) Set(v string) error {
	for _, a := range f.allowed {
		if strings.EqualFold(a, v) {
			f.value = a
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(f.allowed, ", "))
}

// commonAliases are az's short flag names shared by enrollments and groups.
var commonAliases = map[string]string{
	"at": "attestation-type", "pk": "primary-key", "sk": "secondary-key",
	"ee": "edge-enabled", "tags": "initial-twin-tags", "props": "initial-twin-properties",
	"ps": "provisioning-status", "ap": "allocation-policy", "ih": "iot-hubs",
	"rp": "reprovision-policy", "wh": "webhook-url", "av": "api-version",
	"keys": "show-keys", "device-info": "device-information",
}

// withAliases returns a flag-name normaliser that maps commonAliases and
// extra to their canonical names, so `--pk K` is `--primary-key K`.
func withAliases(extra map[string]string) func(*pflag.FlagSet, string) pflag.NormalizedName {
	return func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if n, ok := extra[name]; ok {
			return pflag.NormalizedName(n)
		}
		if n, ok := commonAliases[name]; ok {
			return pflag.NormalizedName(n)
		}
		return pflag.NormalizedName(name)
	}
}
