package hub

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/twinquery"
)

// Configuration is an automatic device management configuration (ADM, for
// device or module twins) or an IoT Edge deployment (hub-protocol.md §5.2).
// ID and Content are immutable once created.
type Configuration struct {
	ID            string
	SchemaVersion string
	Labels        map[string]string
	Content       ConfigurationContent
	ContentType   string
	// TargetCondition is a twin query condition ("tags.env = 'test'"), "*"
	// for every twin, or "" for none. Module configurations may write it as
	// "FROM devices.modules WHERE <condition>".
	TargetCondition string
	Priority        int               // larger wins; >= 0
	MetricQueries   map[string]string // metrics.queries: name → query counting rows
	Created         time.Time
	Updated         time.Time
	ETag            string
}

// ConfigurationContent holds exactly one of its three maps; nil means
// absent, so an empty map is content that sets nothing.
type ConfigurationContent struct {
	// DeviceContent maps twin paths rooted at properties.desired
	// ("properties.desired.a.b") to values merged into device twins.
	DeviceContent map[string]any
	// ModuleContent is the same for module twins.
	ModuleContent map[string]any
	// ModulesContent maps a module ID ($edgeAgent, $edgeHub, user modules)
	// to twin paths: "properties.desired" replaces the module's desired
	// properties, "properties.desired.x.y" sets one sub-tree (layered
	// deployments, hub-protocol.md §5.5).
	ModulesContent map[string]map[string]any
}

// ConfigurationKind says what a configuration configures, by its content.
type ConfigurationKind int

// Kinds of configurations.
const (
	NoContent           ConfigurationKind = iota
	DeviceConfiguration                   // deviceContent: ADM on device twins
	ModuleConfiguration                   // moduleContent: ADM on module twins
	EdgeDeployment                        // modulesContent: IoT Edge deployment
)

// Kind is the kind of the content; NoContent when none (or more than one)
// of the maps is present.
func (c ConfigurationContent) Kind() ConfigurationKind {
	kind, n := NoContent, 0
	if c.DeviceContent != nil {
		kind, n = DeviceConfiguration, n+1
	}
	if c.ModuleContent != nil {
		kind, n = ModuleConfiguration, n+1
	}
	if c.ModulesContent != nil {
		kind, n = EdgeDeployment, n+1
	}
	if n != 1 {
		return NoContent
	}
	return kind
}

// doc renders the content as one JSON-like document, for comparisons.
func (c ConfigurationContent) doc() map[string]any {
	out := map[string]any{"deviceContent": nil, "moduleContent": nil, "modulesContent": nil}
	if c.DeviceContent != nil {
		out["deviceContent"] = c.DeviceContent
	}
	if c.ModuleContent != nil {
		out["moduleContent"] = c.ModuleContent
	}
	if c.ModulesContent != nil {
		mods := make(map[string]any, len(c.ModulesContent))
		for id, m := range c.ModulesContent {
			mods[id] = m
		}
		out["modulesContent"] = mods
	}
	return out
}

// ConfigurationMetrics are named queries and the number of rows each
// selects (hub-protocol.md §5.4).
type ConfigurationMetrics struct {
	Queries map[string]string
	Results map[string]int
}

// ConfigurationReport is a configuration with its metrics evaluated at the
// time it was read.
type ConfigurationReport struct {
	Configuration
	SystemMetrics ConfigurationMetrics
	Metrics       ConfigurationMetrics
}

// Reasons refine configuration failures into IoT Hub's error codes
// (hub-protocol.md §1.4); package wire maps them. The comment names the
// kind each goes with and the code it stands for.
const (
	// ReasonConfigurationNotFound (NotFound): ConfigurationNotFound.
	ReasonConfigurationNotFound fault.Reason = "hub.configuration-not-found"
	// ReasonConfigurationExists (Conflict): ConfigurationAlreadyExists.
	ReasonConfigurationExists fault.Reason = "hub.configuration-exists"
	// ReasonInvalidTargetCondition (Invalid):
	// InvalidConfigurationTargetCondition.
	ReasonInvalidTargetCondition fault.Reason = "hub.invalid-target-condition"
	// ReasonInvalidConfigurationContent (Invalid):
	// InvalidConfigurationContent.
	ReasonInvalidConfigurationContent fault.Reason = "hub.invalid-configuration-content"
	// ReasonInvalidMetricQuery (Invalid):
	// InvalidConfigurationCustomMetricsQuery.
	ReasonInvalidMetricQuery fault.Reason = "hub.invalid-metric-query"
	// ReasonImmutableContent (Invalid):
	// CannotModifyImmutableConfigurationContent.
	ReasonImmutableContent fault.Reason = "hub.immutable-configuration-content"
	// ReasonTooManyConfigurations (TooLarge): the hub has
	// MaxConfigurations; IoT Hub answers with a quota error.
	ReasonTooManyConfigurations fault.Reason = "hub.too-many-configurations"
)

// ConfigurationReasons lists every configuration reason, for tables that
// must cover them all.
func ConfigurationReasons() []fault.Reason {
	return []fault.Reason{ReasonConfigurationNotFound, ReasonConfigurationExists, ReasonInvalidTargetCondition,
		ReasonInvalidConfigurationContent, ReasonInvalidMetricQuery, ReasonImmutableContent, ReasonTooManyConfigurations}
}

// Configuration limits (hub-protocol.md §5.2, §9).
const (
	MaxConfigurations     = 100
	MaxMetricQueries      = 5
	MaxConfigurationIDLen = 128
)

// ValidateConfigurationID checks IoT Hub's configuration ID rules: 1–128
// characters, lower case, no white space and none of & ^ [ ] { } \ | " < > /.
func ValidateConfigurationID(id string) error {
	if id == "" || len(id) > MaxConfigurationIDLen {
		return fault.New(fault.Invalid, "configuration ID must be 1 to %d characters long", MaxConfigurationIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c >= 'A' && c <= 'Z' || strings.IndexByte(`&^[]{}\|"<>/`, c) >= 0 {
			return fault.New(fault.Invalid, "configuration ID %q contains %q; IDs are lower case without spaces or any of & ^ [ ] { } \\ | \" < > /", id, string(rune(c)))
		}
	}
	return nil
}

// Validate checks a configuration as PutConfiguration does before it
// stores one: its ID, content, priority, target condition and metric
// queries. Errors: fault.Invalid, with the reasons PutConfiguration gives.
func (c *Configuration) Validate() error {
	if err := ValidateConfigurationID(c.ID); err != nil {
		return err
	}
	return c.validate()
}

// validate checks everything but the ID and the content's immutability.
func (c *Configuration) validate() error {
	if err := validateContent(c.Content); err != nil {
		return err
	}
	if c.Priority < 0 {
		return fault.New(fault.Invalid, "priority must be 0 or more, not %d", c.Priority)
	}
	if _, err := parseTarget(c.Content.Kind(), c.TargetCondition); err != nil {
		return err
	}
	if len(c.MetricQueries) > MaxMetricQueries {
		return fault.NewReason(fault.Invalid, ReasonInvalidMetricQuery, "metrics.queries has %d queries; the limit is %d", len(c.MetricQueries), MaxMetricQueries)
	}
	for name, q := range c.MetricQueries {
		if strings.TrimSpace(name) == "" {
			return fault.NewReason(fault.Invalid, ReasonInvalidMetricQuery, "metrics.queries has a query without a name")
		}
		if err := validateMetricQuery(q); err != nil {
			return fault.NewReason(fault.Invalid, ReasonInvalidMetricQuery, "metrics.queries.%s is not a valid query: %s", name, fault.MessageOf(err))
		}
	}
	return nil
}

func validateMetricQuery(q string) error {
	parsed, err := twinquery.Parse(q)
	if err != nil {
		return fault.New(fault.Invalid, "%s", err.Error())
	}
	_, err = collection(parsed.From)
	return err
}

// validateContent checks that exactly one kind of content is present and
// that its paths and values would fit in a twin.
func validateContent(c ConfigurationContent) error {
	n := 0
	for _, present := range []bool{c.DeviceContent != nil, c.ModuleContent != nil, c.ModulesContent != nil} {
		if present {
			n++
		}
	}
	if n != 1 {
		return fault.NewReason(fault.Invalid, ReasonInvalidConfigurationContent, "content must have exactly one of deviceContent, moduleContent and modulesContent; it has %d", n)
	}
	switch {
	case c.DeviceContent != nil:
		return contentFault(validateTwinContent("content.deviceContent", c.DeviceContent))
	case c.ModuleContent != nil:
		return contentFault(validateTwinContent("content.moduleContent", c.ModuleContent))
	}
	return contentFault(validateModulesContent("content.modulesContent", c.ModulesContent))
}

// contentFault marks a content problem as InvalidConfigurationContent.
func contentFault(err error) error {
	if err == nil {
		return nil
	}
	return fault.NewReason(fault.Invalid, ReasonInvalidConfigurationContent, "%s", fault.MessageOf(err))
}

func validateModulesContent(what string, mods map[string]map[string]any) error {
	for _, id := range sortedKeys(mods) {
		if err := ValidateModuleID(id); err != nil {
			return fault.New(fault.Invalid, "%s: %s", what, fault.MessageOf(err))
		}
		if mods[id] == nil {
			return fault.New(fault.Invalid, "%s.%s must be an object of twin paths", what, id)
		}
		if err := validateTwinContent(what+"."+id, mods[id]); err != nil {
			return err
		}
	}
	return nil
}

// validateTwinContent checks content keys (twin paths rooted at
// properties.desired) and that each value fits in desired properties.
func validateTwinContent(what string, m map[string]any) error {
	for _, k := range sortedKeys(m) {
		path, ok := desiredPath(k)
		if !ok {
			return fault.New(fault.Invalid, "%s has the key %q; keys must be properties.desired or a path below it such as properties.desired.settings", what, k)
		}
		v := m[k]
		if _, isObject := v.(map[string]any); len(path) == 0 && !isObject {
			return fault.New(fault.Invalid, "%s.properties.desired must be an object", what)
		}
		doc := setPath(nil, path, v, false)
		if err := ValidateCollection(what+"."+k, doc, MaxDesiredBytes); err != nil {
			return err
		}
	}
	return nil
}

// desiredPath splits a content key into the path below properties.desired.
func desiredPath(key string) ([]string, bool) {
	const root = "properties.desired"
	if key == root {
		return []string{}, true
	}
	rest, ok := strings.CutPrefix(key, root+".")
	if !ok {
		return nil, false
	}
	path := strings.Split(rest, ".")
	for _, seg := range path {
		if seg == "" || strings.HasPrefix(seg, "$") || strings.ContainsAny(seg, " ") || hasControl(seg) || len(seg) > MaxKeyBytes {
			return nil, false
		}
	}
	return path, true
}

// moduleTarget splits "FROM devices.modules [WHERE <condition>]", the form
// module configurations use, into its condition.
var moduleTarget = regexp.MustCompile(`(?is)^\s*from\s+devices\.modules(?:\s+where\s+(.*?))?\s*$`)

// conditionBody returns the condition of a target condition: "" for
// none, "*" for all.
func conditionBody(kind ConfigurationKind, s string) string {
	s = strings.TrimSpace(s)
	if kind == ModuleConfiguration {
		if m := moduleTarget.FindStringSubmatch(s); m != nil {
			if strings.TrimSpace(m[1]) == "" {
				return "*"
			}
			return strings.TrimSpace(m[1])
		}
	}
	return s
}

// configTarget is a parsed target condition.
type configTarget struct {
	none bool                 // "" targets nothing
	cond *twinquery.Condition // nil with none false: every twin
}

func (t configTarget) match(doc map[string]any) bool {
	return !t.none && (t.cond == nil || t.cond.Match(doc))
}

// parseTarget parses a configuration's target condition. Errors name the
// problem (fault.Invalid).
func parseTarget(kind ConfigurationKind, s string) (configTarget, error) {
	body := conditionBody(kind, s)
	if body == "" {
		return configTarget{none: true}, nil
	}
	cond, err := twinquery.ParseCondition(body)
	if err != nil {
		return configTarget{}, fault.NewReason(fault.Invalid, ReasonInvalidTargetCondition, "targetCondition is not valid: %s", err.Error())
	}
	return configTarget{cond: cond}, nil
}

// systemQueries returns the system metric queries of a configuration, as
// IoT Hub writes them (hub-protocol.md §5.4). A configuration without a
// target condition has an empty targetedCount query, counted as 0.
func systemQueries(c Configuration) map[string]string {
	kind := c.Content.Kind()
	cond := conditionBody(kind, c.TargetCondition)
	switch kind {
	case EdgeDeployment:
		targeted := ""
		switch cond {
		case "":
		case "*":
			targeted = "select deviceId from devices where capabilities.iotEdge = true"
		default:
			targeted = "select deviceId from devices where capabilities.iotEdge = true and (" + cond + ")"
		}
		applied := "select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[" + c.ID + "]].status = 'Applied'"
		reported := applied + " and properties.desired.$version = properties.reported.lastDesiredVersion and properties.reported.lastDesiredStatus.code"
		return map[string]string{
			"targetedCount":           targeted,
			"appliedCount":            applied,
			"reportedSuccessfulCount": reported + " = 200",
			"reportedFailedCount":     reported + " != 200",
		}
	case ModuleConfiguration:
		return map[string]string{
			"targetedCount": selectWhere("select deviceId, moduleId from devices.modules", cond),
			"appliedCount":  "select deviceId, moduleId from devices.modules where configurations.[[" + c.ID + "]].status = 'Applied'",
		}
	}
	return map[string]string{
		"targetedCount": selectWhere("select deviceId from devices", cond),
		"appliedCount":  "select deviceId from devices where configurations.[[" + c.ID + "]].status = 'Applied'",
	}
}

func selectWhere(sel, cond string) string {
	switch cond {
	case "":
		return ""
	case "*":
		return sel
	}
	return sel + " where " + cond
}

// Configuration returns a configuration with its metrics counted now.
func (s *Service) Configuration(ctx context.Context, id string) (ConfigurationReport, error) {
	c, err := s.configuration(ctx, id)
	if err != nil {
		return ConfigurationReport{}, err
	}
	return s.measure(ctx, c)
}

func (s *Service) configuration(ctx context.Context, id string) (Configuration, error) {
	c, err := s.store.Configuration(ctx, id)
	if fault.Is(err, fault.NotFound) {
		return c, fault.NewReason(fault.NotFound, ReasonConfigurationNotFound, "Configuration %q not found.", id)
	}
	return c, err
}

// Configurations lists up to top configurations (all when top <= 0) with
// their metrics counted now.
func (s *Service) Configurations(ctx context.Context, top int) ([]ConfigurationReport, error) {
	if top <= 0 || top > MaxConfigurations {
		top = MaxConfigurations
	}
	list, err := s.store.Configurations(ctx, top)
	if err != nil {
		return nil, err
	}
	out := make([]ConfigurationReport, 0, len(list))
	for _, c := range list {
		r, err := s.measure(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// PutConfiguration creates a configuration (ifMatch "" or "*" and no
// configuration with its ID) or updates one (ifMatch "*" or its etag), as
// PUT /configurations/{id} does, then evaluates every device against the
// new set of configurations. Errors: fault.Invalid (rules, or a changed
// content), fault.Conflict (create of an existing ID), fault.NotFound
// (an etag for a missing configuration), fault.PreconditionFailed,
// fault.TooLarge (more than MaxConfigurations).
func (s *Service) PutConfiguration(ctx context.Context, c Configuration, ifMatch string) (ConfigurationReport, error) {
	if err := ValidateConfigurationID(c.ID); err != nil {
		return ConfigurationReport{}, err
	}
	want := NormalizeETag(ifMatch)
	now := s.now().UTC()
	if c.SchemaVersion == "" {
		c.SchemaVersion = "1.0"
	}
	old, err := s.store.Configuration(ctx, c.ID)
	switch {
	case fault.Is(err, fault.NotFound):
		if want != "" && want != "*" {
			return ConfigurationReport{}, fault.NewReason(fault.NotFound, ReasonConfigurationNotFound, "Configuration %q not found.", c.ID)
		}
		if err := c.validate(); err != nil {
			return ConfigurationReport{}, err
		}
		list, err := s.store.Configurations(ctx, MaxConfigurations)
		if err != nil {
			return ConfigurationReport{}, err
		}
		if len(list) >= MaxConfigurations {
			return ConfigurationReport{}, fault.NewReason(fault.TooLarge, ReasonTooManyConfigurations, "the hub has %d configurations, the limit", MaxConfigurations)
		}
		c.Created, c.Updated, c.ETag = now, now, newConfigurationETag()
		err = s.store.CreateConfiguration(ctx, c)
		if fault.Is(err, fault.Conflict) {
			return ConfigurationReport{}, fault.NewReason(fault.Conflict, ReasonConfigurationExists, "Configuration %q already exists.", c.ID)
		}
		if err != nil {
			return ConfigurationReport{}, err
		}
	case err != nil:
		return ConfigurationReport{}, err
	default:
		if want == "" {
			return ConfigurationReport{}, fault.NewReason(fault.Conflict, ReasonConfigurationExists, "Configuration %q already exists; send If-Match with its etag or \"*\" to update it.", c.ID)
		}
		if want != "*" && want != old.ETag {
			return ConfigurationReport{}, fault.New(fault.PreconditionFailed, "If-Match %q does not match the configuration's etag", want)
		}
		if c.Content.DeviceContent == nil && c.Content.ModuleContent == nil && c.Content.ModulesContent == nil {
			c.Content = old.Content // an update may leave the content out
		}
		if !sameJSON(c.Content.doc(), old.Content.doc()) {
			return ConfigurationReport{}, fault.NewReason(fault.Invalid, ReasonImmutableContent, "the content of configuration %q cannot change; create a new configuration", c.ID)
		}
		if err := c.validate(); err != nil {
			return ConfigurationReport{}, err
		}
		c.Created, c.Updated, c.ETag = old.Created, now, newConfigurationETag()
		err = s.store.UpdateConfiguration(ctx, c, old.ETag)
		if fault.Is(err, fault.PreconditionFailed) {
			return ConfigurationReport{}, fault.New(fault.PreconditionFailed, "configuration %q changed concurrently; read it again", c.ID)
		}
		if fault.Is(err, fault.NotFound) {
			return ConfigurationReport{}, fault.NewReason(fault.NotFound, ReasonConfigurationNotFound, "Configuration %q not found.", c.ID)
		}
		if err != nil {
			return ConfigurationReport{}, err
		}
	}
	s.configurationsChanged(ctx, nil)
	ch := Change{Kind: ChangeConfiguration, ID: c.ID, Action: "create", ETagAfter: c.ETag, Detail: fmt.Sprintf("priority %d, target condition %q", c.Priority, c.TargetCondition)}
	if old.ETag != "" {
		ch.Action, ch.ETagBefore = "update", old.ETag
	}
	s.audit.Changed(ctx, ch)
	return s.measure(ctx, c)
}

// DeleteConfiguration deletes a configuration (ifMatch "", "*" or its
// etag) and re-evaluates every device: IoT Edge devices keep their module
// twins unless another deployment now applies; ADM twins lose the values
// the configuration set (where nobody changed them since) and take those
// of the next configuration. Errors: fault.NotFound,
// fault.PreconditionFailed.
func (s *Service) DeleteConfiguration(ctx context.Context, id, ifMatch string) error {
	old, err := s.configuration(ctx, id)
	if err != nil {
		return err
	}
	want := NormalizeETag(ifMatch)
	if want == "*" {
		want = ""
	}
	if want != "" && want != old.ETag {
		return fault.New(fault.PreconditionFailed, "If-Match %q does not match the configuration's etag", want)
	}
	err = s.store.DeleteConfiguration(ctx, id, old.ETag)
	switch {
	case fault.Is(err, fault.NotFound):
		return fault.NewReason(fault.NotFound, ReasonConfigurationNotFound, "Configuration %q not found.", id)
	case fault.Is(err, fault.PreconditionFailed):
		return fault.New(fault.PreconditionFailed, "configuration %q changed concurrently; read it again", id)
	case err != nil:
		return err
	}
	s.configurationsChanged(ctx, &old)
	s.audit.Changed(ctx, Change{Kind: ChangeConfiguration, ID: id, Action: "delete", ETagBefore: old.ETag})
	return nil
}

// configurationsChanged re-evaluates every device after a configuration
// was written. The write has happened, so the evaluation outlives a caller
// that goes away; failures are logged and the periodic pass retries.
func (s *Service) configurationsChanged(ctx context.Context, retired *Configuration) {
	ctx = context.WithoutCancel(ctx)
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	if err := s.evaluateAll(ctx, retired); err != nil {
		s.log.Warn("evaluating deployments after a configuration change", "err", err)
	}
}

// measure counts the rows of a configuration's system and custom metric
// queries through the query engine. A custom query that fails is logged
// and left without a result.
func (s *Service) measure(ctx context.Context, c Configuration) (ConfigurationReport, error) {
	r := ConfigurationReport{
		Configuration: c,
		SystemMetrics: ConfigurationMetrics{Queries: systemQueries(c), Results: map[string]int{}},
		Metrics:       ConfigurationMetrics{Queries: map[string]string{}, Results: map[string]int{}},
	}
	for name, q := range r.SystemMetrics.Queries {
		n, err := s.countRows(ctx, q)
		if err != nil {
			return ConfigurationReport{}, err
		}
		r.SystemMetrics.Results[name] = n
	}
	for name, q := range c.MetricQueries {
		r.Metrics.Queries[name] = q
		n, err := s.countRows(ctx, q)
		if err != nil {
			s.log.Warn("configuration metric query failed", "configuration", c.ID, "metric", name, "err", err)
			continue
		}
		r.Metrics.Results[name] = n
	}
	return r, nil
}

// countRows counts a metric query's rows; an empty query counts 0.
func (s *Service) countRows(ctx context.Context, q string) (int, error) {
	if strings.TrimSpace(q) == "" {
		return 0, nil
	}
	return s.Count(ctx, q)
}

// QueryTest is the answer of POST /configurations/testQueries: "" or the
// problem with the target condition, and the problem with each custom
// metric query that has one.
type QueryTest struct {
	TargetConditionError    string
	CustomMetricQueryErrors map[string]string
}

// TestQueries checks a target condition and custom metric queries without
// storing anything. The condition may use the module form "FROM
// devices.modules WHERE …".
func (s *Service) TestQueries(targetCondition string, queries map[string]string) QueryTest {
	out := QueryTest{CustomMetricQueryErrors: map[string]string{}}
	if _, err := parseTarget(ModuleConfiguration, targetCondition); err != nil {
		out.TargetConditionError = fault.MessageOf(err)
	}
	for name, q := range queries {
		if err := validateMetricQuery(q); err != nil {
			out.CustomMetricQueryErrors[name] = fault.MessageOf(err)
		}
	}
	return out
}

func newConfigurationETag() string {
	return base64.StdEncoding.EncodeToString([]byte(newETag()[:8]))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
