package seed

import (
	"go.yaml.in/yaml/v3"

	"github.com/usher-iot/usher/internal/hub"
)

// configuration reads a hub configuration (ADM or IoT Edge deployment),
// named as in IoT Hub's Configuration JSON.
func (p *parser) configuration(n *yaml.Node) {
	var c hub.Configuration
	before := len(p.errs)
	if !p.object(n, "configuration", []field{
		{name: "id", handle: p.id(&c.ID, "id", hub.ValidateConfigurationID)},
		{name: "schemaVersion", handle: p.str(&c.SchemaVersion, "schemaVersion")},
		{name: "labels", handle: p.stringMap(&c.Labels, "labels")},
		{name: "targetCondition", handle: p.str(&c.TargetCondition, "targetCondition")},
		{name: "priority", handle: p.integer(&c.Priority, "priority")},
		{name: "content", handle: func(v *yaml.Node) { p.content(v, &c.Content) }},
		{name: "metrics", handle: func(v *yaml.Node) {
			p.object(v, "metrics", []field{
				{name: "queries", handle: p.stringMap(&c.MetricQueries, "metrics.queries")},
				{name: "results", ignored: true},
			})
		}},
		// Read-only fields `az iot edge deployment show` prints.
		{name: "etag", ignored: true},
		{name: "createdTimeUtc", ignored: true},
		{name: "lastUpdatedTimeUtc", ignored: true},
		{name: "systemMetrics", ignored: true},
		{name: "contentType", ignored: true},
	}) {
		return
	}
	if c.ID == "" {
		if len(p.errs) == before {
			p.fail(n, "configuration needs an id")
		}
		return
	}
	p.unique(n, "configuration", c.ID)
	if c.SchemaVersion == "" {
		c.SchemaVersion = "1.0"
	}
	if len(p.errs) == before && p.check(n, `configuration "`+c.ID+`": `, c.Validate()) {
		p.file.Configurations = append(p.file.Configurations, c)
		if len(p.file.Configurations) == hub.MaxConfigurations+1 {
			p.fail(n, "the file declares more than %d configurations, the hub's limit", hub.MaxConfigurations)
		}
	}
}

func (p *parser) content(n *yaml.Node, c *hub.ConfigurationContent) {
	p.object(n, "content", []field{
		{name: "deviceContent", handle: func(v *yaml.Node) { p.twinContent(v, &c.DeviceContent, "content.deviceContent") }},
		{name: "moduleContent", handle: func(v *yaml.Node) { p.twinContent(v, &c.ModuleContent, "content.moduleContent") }},
		{name: "modulesContent", handle: func(v *yaml.Node) {
			if v = p.visit(v); v == nil || isNull(v) {
				return
			}
			if v.Kind != yaml.MappingNode {
				p.fail(v, "content.modulesContent must be a mapping of module IDs to twin content, not %s", describe(v))
				return
			}
			mods := map[string]map[string]any{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k := p.visit(v.Content[i])
				if k == nil {
					return
				}
				id, ok := p.text(k, "a module ID in content.modulesContent")
				if !ok {
					continue
				}
				if _, dup := mods[id]; dup {
					p.fail(k, "module %q is given twice in content.modulesContent", id)
					continue
				}
				m := map[string]any{}
				p.twinContent(v.Content[i+1], &m, "content.modulesContent."+id)
				mods[id] = m
			}
			c.ModulesContent = mods
		}},
	})
}

// twinContent reads deviceContent, moduleContent or one module's content:
// twin paths to values. An empty mapping is content that sets nothing.
func (p *parser) twinContent(n *yaml.Node, dst *map[string]any, what string) {
	p.document(dst, what)(n)
}
