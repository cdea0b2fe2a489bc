package seed

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/hub"
)

// Read-only fields of IndividualEnrollment and EnrollmentGroup that `az iot
// dps enrollment show` prints: accepted and ignored.
var enrollmentOutputFields = []field{
	{name: "etag", ignored: true},
	{name: "createdDateTimeUtc", ignored: true},
	{name: "lastUpdatedDateTimeUtc", ignored: true},
	{name: "registrationState", ignored: true},
}

func (p *parser) enrollment(n *yaml.Node) {
	var e dps.Enrollment
	before := len(p.errs)
	fields := append([]field{
		{name: "registrationId", handle: p.id(&e.RegistrationID, "registrationId", func(id string) error { return dps.ValidateID("registrationId", id) })},
		{name: "deviceId", handle: p.id(&e.DeviceID, "deviceId", dps.ValidateDeviceID)},
		{name: "optionalDeviceInformation", handle: p.document(&e.OptionalDeviceInformation, "optionalDeviceInformation")},
	}, p.settingsFields(&e.Settings)...)
	if !p.object(n, "enrollment", append(fields, enrollmentOutputFields...)) {
		return
	}
	if e.RegistrationID == "" {
		if len(p.errs) == before {
			p.fail(n, "enrollment needs a registrationId")
		}
		return
	}
	p.unique(n, "enrollment", dps.IDKey(e.RegistrationID))
	if len(p.errs) == before && p.check(n, `enrollment "`+e.RegistrationID+`": `, e.Validate()) {
		p.file.Enrollments = append(p.file.Enrollments, e)
	}
}

func (p *parser) group(n *yaml.Node) {
	var g dps.Group
	before := len(p.errs)
	fields := append([]field{
		{name: "enrollmentGroupId", handle: p.id(&g.ID, "enrollmentGroupId", func(id string) error { return dps.ValidateID("enrollmentGroupId", id) })},
	}, p.settingsFields(&g.Settings)...)
	if !p.object(n, "enrollment group", append(fields, enrollmentOutputFields...)) {
		return
	}
	if g.ID == "" {
		if len(p.errs) == before {
			p.fail(n, "enrollment group needs an enrollmentGroupId")
		}
		return
	}
	p.unique(n, "enrollment group", dps.IDKey(g.ID))
	if len(p.errs) == before && p.check(n, `enrollment group "`+g.ID+`": `, g.Validate()) {
		p.file.Groups = append(p.file.Groups, g)
	}
}

// settingsFields are the fields enrollments and groups share, named as in
// Azure's IndividualEnrollment and EnrollmentGroup JSON.
func (p *parser) settingsFields(s *dps.Settings) []field {
	s.Attestation.Type = dps.SymmetricKey // when the file names none
	return []field{
		{name: "attestation", handle: func(n *yaml.Node) { p.attestation(n, &s.Attestation) }},
		{name: "capabilities", handle: func(n *yaml.Node) {
			p.object(n, "capabilities", []field{{name: "iotEdge", handle: p.boolean(&s.IoTEdge, "capabilities.iotEdge")}})
		}},
		{name: "provisioningStatus", handle: func(n *yaml.Node) {
			var v string
			p.str(&v, "provisioningStatus")(n)
			s.ProvisioningStatus = dps.ProvisioningStatus(v)
		}},
		{name: "initialTwin", handle: func(n *yaml.Node) { p.initialTwin(n, s) }},
		{name: "reprovisionPolicy", handle: func(n *yaml.Node) {
			r := &dps.ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
			if p.object(n, "reprovisionPolicy", []field{
				{name: "updateHubAssignment", handle: p.boolean(&r.UpdateHubAssignment, "reprovisionPolicy.updateHubAssignment")},
				{name: "migrateDeviceData", handle: p.boolean(&r.MigrateDeviceData, "reprovisionPolicy.migrateDeviceData")},
			}) {
				s.ReprovisionPolicy = r
			}
		}},
		{name: "allocationPolicy", handle: p.str(&s.AllocationPolicy, "allocationPolicy")},
		{name: "iotHubs", handle: p.stringList(&s.IoTHubs, "iotHubs")},
		{name: "iotHubHostName", handle: p.str(&s.IoTHubHostName, "iotHubHostName")},
		{name: "customAllocationDefinition", handle: func(n *yaml.Node) {
			c := &dps.CustomAllocation{}
			if p.object(n, "customAllocationDefinition", []field{
				{name: "webhookUrl", handle: p.str(&c.WebhookURL, "customAllocationDefinition.webhookUrl")},
				{name: "apiVersion", handle: p.str(&c.APIVersion, "customAllocationDefinition.apiVersion")},
			}) {
				s.CustomAllocation = c
			}
		}},
	}
}

func (p *parser) attestation(n *yaml.Node, a *dps.Attestation) {
	var typ string
	var typeNode *yaml.Node
	unsupported := func(name string) func(*yaml.Node) {
		return func(v *yaml.Node) {
			if v = p.visit(v); v != nil && !isNull(v) {
				p.fail(v, "attestation.%s is not supported yet; use symmetricKey", name)
			}
		}
	}
	if !p.object(n, "attestation", []field{
		{name: "type", handle: func(v *yaml.Node) { typeNode = v; p.str(&typ, "attestation.type")(v) }},
		{name: "symmetricKey", handle: func(v *yaml.Node) {
			p.object(v, "attestation.symmetricKey", []field{
				{name: "primaryKey", handle: p.key(&a.PrimaryKey, "attestation.symmetricKey.primaryKey")},
				{name: "secondaryKey", handle: p.key(&a.SecondaryKey, "attestation.symmetricKey.secondaryKey")},
			})
		}},
		{name: "x509", handle: unsupported("x509")},
		{name: "tpm", handle: unsupported("tpm")},
	}) {
		return
	}
	if typ != "" && !strings.EqualFold(typ, string(dps.SymmetricKey)) {
		p.fail(typeNode, "attestation.type %q is not supported; Usher seeds symmetricKey enrollments", typ)
		return
	}
	a.Type = dps.SymmetricKey
}

func (p *parser) initialTwin(n *yaml.Node, s *dps.Settings) {
	t := &dps.InitialTwin{}
	var tagsNode, desiredNode *yaml.Node
	if !p.object(n, "initialTwin", []field{
		{name: "tags", handle: func(v *yaml.Node) { tagsNode = v; p.document(&t.Tags, "initialTwin.tags")(v) }},
		{name: "properties", handle: func(v *yaml.Node) {
			p.object(v, "initialTwin.properties", []field{
				{name: "desired", handle: func(v *yaml.Node) { desiredNode = v; p.document(&t.Desired, "initialTwin.properties.desired")(v) }},
			})
		}},
	}) {
		return
	}
	if t.Tags != nil {
		p.check(tagsNode, "", hub.ValidateCollection("initialTwin.tags", t.Tags, hub.MaxTagsBytes))
	}
	if t.Desired != nil {
		p.check(desiredNode, "", hub.ValidateCollection("initialTwin.properties.desired", t.Desired, hub.MaxDesiredBytes))
	}
	s.InitialTwin = t
}
