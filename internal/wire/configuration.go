package wire

import (
	"bytes"
	"encoding/json"

	"github.com/usher-iot/usher/internal/hub"
)

// Configuration is IoT Hub's Configuration JSON, for ADM configurations
// and IoT Edge deployments alike (hub-protocol.md §5.2; the Node SDK's
// Registry.addConfiguration capture in shared/spec/wire/hub-service-registry.md).
// Requests echo the read-only fields (etag, times, metric results); they
// are ignored.
type Configuration struct {
	ID                 string                `json:"id"`
	SchemaVersion      *string               `json:"schemaVersion"`
	Labels             map[string]string     `json:"labels"`
	Content            *ConfigurationContent `json:"content"`
	ContentType        *string               `json:"contentType"`
	TargetCondition    string                `json:"targetCondition"`
	CreatedTimeUTC     string                `json:"createdTimeUtc"`
	LastUpdatedTimeUTC string                `json:"lastUpdatedTimeUtc"`
	Priority           int                   `json:"priority"`
	SystemMetrics      ConfigurationMetrics  `json:"systemMetrics"`
	Metrics            ConfigurationMetrics  `json:"metrics"`
	ETag               string                `json:"etag"`
}

// ConfigurationContent holds one of deviceContent, moduleContent and
// modulesContent. Clients send the others as null (.NET) or leave them
// out; answers leave them out.
type ConfigurationContent struct {
	DeviceContent  map[string]any            `json:"deviceContent"`
	ModuleContent  map[string]any            `json:"moduleContent"`
	ModulesContent map[string]map[string]any `json:"modulesContent"`
}

// MarshalJSON writes only the kinds of content that are present, empty
// ones included.
func (c ConfigurationContent) MarshalJSON() ([]byte, error) {
	out := map[string]any{}
	if c.DeviceContent != nil {
		out["deviceContent"] = c.DeviceContent
	}
	if c.ModuleContent != nil {
		out["moduleContent"] = c.ModuleContent
	}
	if c.ModulesContent != nil {
		out["modulesContent"] = c.ModulesContent
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // routes and createOptions keep their < > &
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// ConfigurationMetrics are named queries and their row counts.
type ConfigurationMetrics struct {
	Results map[string]int    `json:"results"`
	Queries map[string]string `json:"queries"`
}

// ToConfiguration reads what a client may set from a Configuration body
// (PUT /configurations/{id}).
func (c *Configuration) ToConfiguration() hub.Configuration {
	out := hub.Configuration{
		ID: c.ID, Labels: c.Labels, TargetCondition: c.TargetCondition, Priority: c.Priority,
		SchemaVersion: deref(c.SchemaVersion), ContentType: deref(c.ContentType), MetricQueries: c.Metrics.Queries,
	}
	if c.Content != nil {
		out.Content = c.Content.ToContent()
	}
	return out
}

// ToContent converts content (also the body of POST
// /devices/{id}/applyConfigurationContent).
func (c *ConfigurationContent) ToContent() hub.ConfigurationContent {
	return hub.ConfigurationContent{DeviceContent: c.DeviceContent, ModuleContent: c.ModuleContent, ModulesContent: c.ModulesContent}
}

// FromConfiguration renders a configuration with its metrics.
func FromConfiguration(r hub.ConfigurationReport) Configuration {
	c := r.Configuration
	out := Configuration{
		ID: c.ID, Labels: c.Labels, TargetCondition: c.TargetCondition, Priority: c.Priority,
		Content:        &ConfigurationContent{DeviceContent: c.Content.DeviceContent, ModuleContent: c.Content.ModuleContent, ModulesContent: c.Content.ModulesContent},
		CreatedTimeUTC: FormatTime(c.Created), LastUpdatedTimeUTC: FormatTime(c.Updated), ETag: c.ETag,
		SystemMetrics: fromMetrics(r.SystemMetrics), Metrics: fromMetrics(r.Metrics),
	}
	if c.SchemaVersion != "" {
		v := c.SchemaVersion
		out.SchemaVersion = &v
	}
	if c.ContentType != "" {
		v := c.ContentType
		out.ContentType = &v
	}
	return out
}

func fromMetrics(m hub.ConfigurationMetrics) ConfigurationMetrics {
	out := ConfigurationMetrics{Results: m.Results, Queries: m.Queries}
	if out.Results == nil {
		out.Results = map[string]int{}
	}
	if out.Queries == nil {
		out.Queries = map[string]string{}
	}
	return out
}

// ConfigurationQueriesTestInput is the body of POST
// /configurations/testQueries.
type ConfigurationQueriesTestInput struct {
	TargetCondition     string            `json:"targetCondition"`
	CustomMetricQueries map[string]string `json:"customMetricQueries"`
}

// ConfigurationQueriesTestResponse is its answer: "" and {} when all is
// well.
type ConfigurationQueriesTestResponse struct {
	TargetConditionError    string            `json:"targetConditionError"`
	CustomMetricQueryErrors map[string]string `json:"customMetricQueryErrors"`
}

// FromQueryTest renders a query test.
func FromQueryTest(t hub.QueryTest) ConfigurationQueriesTestResponse {
	out := ConfigurationQueriesTestResponse{TargetConditionError: t.TargetConditionError, CustomMetricQueryErrors: t.CustomMetricQueryErrors}
	if out.CustomMetricQueryErrors == nil {
		out.CustomMetricQueryErrors = map[string]string{}
	}
	return out
}
