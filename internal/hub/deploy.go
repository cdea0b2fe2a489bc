package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/twinquery"
)

// The deployment engine decides what configurations want of each twin and
// writes it through the twin write path (hub-protocol.md §5.3):
//
//   - IoT Edge deployments (modulesContent) target edge devices whose device
//     twin matches. One base deployment applies (the one whose $edgeAgent has
//     a full "properties.desired"): the highest priority, ties to the newest
//     createdTimeUtc. Layered deployments with a higher priority are merged
//     on top in ascending priority. The result replaces the desired
//     properties of $edgeAgent, $edgeHub and the user modules whose twins
//     exist; a module whose twin appears later gets its content on the next
//     evaluation of the device. $edgeAgent's configurations show Applied
//     for the base and merged layers, Targeted for the others. A device
//     nothing targets keeps its module twins as they are.
//   - ADM configurations (deviceContent, moduleContent) merge their values
//     into twins in ascending priority, so the highest priority wins per
//     path; a configuration is Applied where at least one of its values
//     survives. When a twin stops being targeted (or the configuration is
//     deleted) the values it set are removed, unless someone changed them
//     since, and the next configuration applies.
//   - A device with content from applyConfigurationContent and no automatic
//     deployment keeps that content, re-applied like a base deployment.
//
// Evaluation is level-triggered: each run computes the wanted state from the
// configurations and writes a twin only when its desired properties or
// configuration statuses differ, so repeated runs write nothing. A direct
// edit of a path a configuration owns is put back on the next run.
// Evaluations are serialised by deployMu.

// Configuration statuses on twins.
const (
	StatusTargeted = "Targeted"
	StatusApplied  = "Applied"
)

// DeviceDeployment is the content applied to one IoT Edge device with
// applyConfigurationContent (a per-device deployment).
type DeviceDeployment struct {
	DeviceID string
	// GenerationID is the device's when the content was applied; content
	// of an earlier device with the same ID is ignored.
	GenerationID   string
	ModulesContent map[string]map[string]any
	Applied        time.Time
}

// EvaluateDeployments evaluates every device against every configuration
// and writes what changed. The server runs it periodically; writes of
// configurations run it too. Devices that fail are skipped and the first
// error is returned after the rest were evaluated.
func (s *Service) EvaluateDeployments(ctx context.Context) error {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	return s.evaluateAll(ctx, nil)
}

// EvaluateDevice evaluates one device (its twin, and its module twins when
// it is an edge device or module configurations exist). Call it when a
// device's module identities change, so a new module twin gets its
// deployment content at once. Errors: fault.NotFound.
func (s *Service) EvaluateDevice(ctx context.Context, deviceID string) error {
	// The common case while provisioning — no configuration exists and the
	// device has nothing to clean up — writes nothing, so it is decided
	// without the lock that serialises evaluations.
	set, d, t, err := s.deviceState(ctx, deviceID)
	if err != nil || nothingToEvaluate(set, d, t) {
		return err
	}
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	if set, d, t, err = s.deviceState(ctx, deviceID); err != nil {
		return err
	}
	return s.evaluateDevice(ctx, set, d, t)
}

// deviceState reads what evaluating one device needs.
func (s *Service) deviceState(ctx context.Context, deviceID string) (*configSet, Device, Twin, error) {
	set, err := s.loadConfigurations(ctx, nil)
	if err != nil {
		return nil, Device{}, Twin{}, err
	}
	d, err := s.Device(ctx, deviceID)
	if err != nil {
		return nil, Device{}, Twin{}, err
	}
	t, err := s.store.Twin(ctx, deviceID, "")
	return set, d, t, err
}

// nothingToEvaluate reports a device no configuration configures and that
// has no configuration state to clean up.
func nothingToEvaluate(set *configSet, d Device, t Twin) bool {
	return len(set.known) == 0 && len(t.Configurations) == 0 && !d.IoTEdge
}

// deviceChanged re-evaluates a device whose tags changed or that was
// provisioned. Its caller's write has succeeded, so failures are logged;
// the periodic pass retries.
func (s *Service) deviceChanged(ctx context.Context, deviceID string) {
	if err := s.EvaluateDevice(ctx, deviceID); err != nil && !fault.Is(err, fault.NotFound) {
		s.log.Warn("evaluating deployments for a device", "deviceId", deviceID, "err", err)
	}
}

// ApplyConfigurationContent applies IoT Edge content to one device
// (POST /devices/{id}/applyConfigurationContent, hub-protocol.md §5.7):
// each module's "properties.desired" replaces its twin's desired
// properties. The content is kept, so modules whose twins do not exist yet
// get theirs when they appear. The legacy name moduleContent is accepted
// for modulesContent. Errors: fault.NotFound (device), fault.Invalid (not
// an edge device, bad content, or automatic deployments target the device:
// IoT Hub does not combine the two).
func (s *Service) ApplyConfigurationContent(ctx context.Context, deviceID string, content ConfigurationContent) error {
	mods := content.ModulesContent
	if mods == nil && content.ModuleContent != nil {
		var err error
		if mods, err = legacyModulesContent(content.ModuleContent); err != nil {
			return err
		}
	}
	if mods == nil {
		return fault.New(fault.Invalid, "modulesContent is required")
	}
	if err := validateModulesContent("modulesContent", mods); err != nil {
		return err
	}
	d, err := s.Device(ctx, deviceID)
	if err != nil {
		return err
	}
	if !d.IoTEdge {
		return fault.New(fault.Invalid, "device %q is not an IoT Edge device; modulesContent applies to edge devices only", deviceID)
	}
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	set, err := s.loadConfigurations(ctx, nil)
	if err != nil {
		return err
	}
	t, err := s.store.Twin(ctx, deviceID, "")
	if err != nil {
		return err
	}
	if ids := set.targeting(EdgeDeployment, TwinDoc(t, d, Connection{})); len(ids) > 0 {
		return fault.New(fault.Invalid, "device %q is targeted by the automatic deployment %q; per-device content cannot be combined with automatic deployments", deviceID, ids[0].ID)
	}
	dd := DeviceDeployment{DeviceID: d.ID, GenerationID: d.GenerationID, ModulesContent: mods, Applied: s.now().UTC()}
	if err := s.store.PutDeviceDeployment(ctx, dd); err != nil {
		return err
	}
	s.audit.Changed(ctx, Change{Kind: ChangeDevice, ID: d.ID, Action: "update", Detail: fmt.Sprintf("applied configuration content for %d modules", len(mods))})
	return s.evaluateDevice(context.WithoutCancel(ctx), set, d, t) // stored: finish even if the caller leaves
}

func legacyModulesContent(m map[string]any) (map[string]map[string]any, error) {
	out := make(map[string]map[string]any, len(m))
	for id, v := range m {
		entries, ok := v.(map[string]any)
		if !ok {
			return nil, fault.New(fault.Invalid, "moduleContent.%s must be an object of twin paths", id)
		}
		out[id] = entries
	}
	return out, nil
}

// configSet is the configurations one evaluation works with.
type configSet struct {
	ordered []*Configuration          // live configurations, lowest precedence first
	targets map[string]configTarget   // parsed target conditions by ID
	known   map[string]*Configuration // live and just deleted, by ID
	modules bool                      // module twins of every device need evaluating
}

// loadConfigurations reads the configurations; retired is one just
// deleted, whose values ADM twins must lose.
func (s *Service) loadConfigurations(ctx context.Context, retired *Configuration) (*configSet, error) {
	list, err := s.store.Configurations(ctx, 10*MaxConfigurations)
	if err != nil {
		return nil, err
	}
	set := &configSet{targets: map[string]configTarget{}, known: map[string]*Configuration{}}
	for i := range list {
		c := &list[i]
		t, err := parseTarget(c.Content.Kind(), c.TargetCondition)
		if err != nil {
			s.log.Warn("configuration has an invalid target condition; it targets nothing", "configuration", c.ID, "err", err)
			t = configTarget{none: true}
		}
		set.targets[c.ID] = t
		set.known[c.ID] = c
		set.ordered = append(set.ordered, c)
		set.modules = set.modules || c.Content.Kind() == ModuleConfiguration
	}
	sort.SliceStable(set.ordered, func(i, j int) bool { return lowerPrecedence(set.ordered[i], set.ordered[j]) })
	if retired != nil {
		if _, live := set.known[retired.ID]; !live {
			set.known[retired.ID] = retired
			set.modules = set.modules || retired.Content.Kind() == ModuleConfiguration
		}
	}
	return set, nil
}

// lowerPrecedence orders configurations: lower priority first, then older
// first (the newest wins a tie), then by ID for a stable order.
func lowerPrecedence(a, b *Configuration) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.ID < b.ID
}

// targeting returns the live configurations of a kind whose target
// condition selects doc, lowest precedence first.
func (set *configSet) targeting(kind ConfigurationKind, doc map[string]any) []*Configuration {
	var out []*Configuration
	for _, c := range set.ordered {
		if c.Content.Kind() == kind && set.targets[c.ID].match(doc) {
			out = append(out, c)
		}
	}
	return out
}

func (set *configSet) live(id string) bool {
	_, ok := set.targets[id]
	return ok
}

// evaluateAll evaluates every device, in device ID order.
func (s *Service) evaluateAll(ctx context.Context, retired *Configuration) error {
	set, err := s.loadConfigurations(ctx, retired)
	if err != nil {
		return err
	}
	var first error
	failed := 0
	after := TwinKey{}
	for {
		batch, err := s.store.TwinRecords(ctx, false, after, scanBatch)
		if err != nil {
			return err
		}
		for _, r := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := s.evaluateDevice(ctx, set, r.Device, r.Twin); err != nil {
				failed++
				if first == nil {
					first = err
				}
				s.log.Warn("evaluating deployments for a device", "deviceId", r.Device.ID, "err", err)
			}
			after = TwinKey{DeviceID: r.Twin.DeviceID}
		}
		if len(batch) < scanBatch {
			break
		}
	}
	if first != nil {
		return fmt.Errorf("deployments: %d devices failed, the first with: %w", failed, first)
	}
	return nil
}

// evaluateDevice brings a device twin and, where it matters, its module
// twins to what the configurations want.
func (s *Service) evaluateDevice(ctx context.Context, set *configSet, d Device, t Twin) error {
	if nothingToEvaluate(set, d, t) {
		return nil // nothing configures it, nothing to clean up: the common case while provisioning
	}
	devDoc := TwinDoc(t, d, Connection{})
	if err := s.converge(ctx, t, set, twinPlan{kinds: []ConfigurationKind{DeviceConfiguration}, adm: set.targeting(DeviceConfiguration, devDoc)}); err != nil {
		return err
	}
	if !d.IoTEdge && !set.modules {
		return nil
	}
	mods, err := s.moduleTwins(ctx, d.ID)
	if err != nil {
		return err
	}
	var edge edgePlan
	if d.IoTEdge {
		if edge, err = s.planEdge(ctx, set, d, devDoc); err != nil {
			return err
		}
	}
	wasAutomatic := false
	var errs []error // one module twin failing (say, over the size limit) does not stop the others
	for _, mt := range mods {
		p := twinPlan{kinds: []ConfigurationKind{EdgeDeployment, ModuleConfiguration}, module: edge.modules[mt.ModuleID]}
		if mt.ModuleID == EdgeAgent {
			p.statuses = edge.statuses
			wasAutomatic = appliedEdgeDeployment(set, mt)
		}
		if set.modules {
			p.adm = set.targeting(ModuleConfiguration, TwinDoc(mt, d, Connection{}))
		}
		if err := s.converge(ctx, mt, set, p); err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", mt.ModuleID, err))
		}
	}
	if edge.automatic && !wasAutomatic && len(errs) == 0 {
		// Automatic deployments now own the device: per-device content
		// must not come back when they stop targeting it.
		return s.store.DeleteDeviceDeployment(ctx, d.ID)
	}
	return errors.Join(errs...)
}

// appliedEdgeDeployment reports whether an $edgeAgent twin shows an
// automatic deployment as applied.
func appliedEdgeDeployment(set *configSet, agent Twin) bool {
	for id, st := range agent.Configurations {
		if c := set.known[id]; st == StatusApplied && c != nil && c.Content.Kind() == EdgeDeployment {
			return true
		}
	}
	return false
}

// moduleTwins lists a device's module twins.
func (s *Service) moduleTwins(ctx context.Context, deviceID string) ([]Twin, error) {
	const batch = 64
	var out []Twin
	after := TwinKey{DeviceID: deviceID}
	for {
		recs, err := s.store.TwinRecords(ctx, true, after, batch)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.Twin.DeviceID != deviceID {
				return out, nil
			}
			out = append(out, r.Twin)
			after.ModuleID = r.Twin.ModuleID
		}
		if len(recs) < batch {
			return out, nil
		}
	}
}

// edgePlan is what IoT Edge deployments want of an edge device's module
// twins.
type edgePlan struct {
	modules   map[string]*modulePlan // by module ID; absent modules are left alone
	statuses  map[string]string      // for $edgeAgent's configurations
	automatic bool                   // a base deployment applies
}

// modulePlan is the desired properties wanted of one module twin: a
// replacement document (nil to start from the twin's own) with sub-trees
// set on top, in order.
type modulePlan struct {
	replace map[string]any
	sets    []pathValue
}

type pathValue struct {
	path  []string
	value any
}

// isBase reports whether an edge deployment is a standard (base)
// deployment: its $edgeAgent content has a full properties.desired.
func isBase(c *Configuration) bool {
	_, ok := c.Content.ModulesContent[EdgeAgent]["properties.desired"]
	return ok
}

// planEdge chooses the base deployment and the layers of an edge device
// and merges their content; with no automatic deployment targeting the
// device, its per-device content (if any) applies.
func (s *Service) planEdge(ctx context.Context, set *configSet, d Device, devDoc map[string]any) (edgePlan, error) {
	p := edgePlan{modules: map[string]*modulePlan{}, statuses: map[string]string{}}
	cands := set.targeting(EdgeDeployment, devDoc)
	if len(cands) == 0 {
		dd, err := s.store.DeviceDeployment(ctx, d.ID)
		if fault.Is(err, fault.NotFound) {
			return p, nil
		}
		if err != nil {
			return p, err
		}
		if dd.GenerationID == d.GenerationID {
			mergeModules(p.modules, dd.ModulesContent)
		}
		return p, nil
	}
	var base *Configuration
	for _, c := range cands {
		p.statuses[c.ID] = StatusTargeted
		if isBase(c) {
			base = c // cands ascend, so the last base wins
		}
	}
	if base == nil {
		return p, nil // layers need a base deployment
	}
	p.automatic = true
	p.statuses[base.ID] = StatusApplied
	mergeModules(p.modules, base.Content.ModulesContent)
	for _, c := range cands {
		if c != base && !isBase(c) && c.Priority > base.Priority {
			p.statuses[c.ID] = StatusApplied
			mergeModules(p.modules, c.Content.ModulesContent)
		}
	}
	return p, nil
}

// mergeModules merges one deployment's modulesContent on top of plans: a
// "properties.desired" replaces what lower layers wanted of the module;
// "properties.desired.x.y" replaces one sub-tree.
func mergeModules(plans map[string]*modulePlan, content map[string]map[string]any) {
	for _, id := range sortedKeys(content) {
		entries := content[id]
		mp := plans[id]
		if mp == nil {
			mp = &modulePlan{}
			plans[id] = mp
		}
		if v, ok := entries["properties.desired"]; ok {
			m, _ := v.(map[string]any)
			mp.replace, mp.sets = MergePatch(nil, m), nil
		}
		for _, k := range sortedKeys(entries) {
			if path, ok := desiredPath(k); ok && len(path) > 0 {
				mp.sets = append(mp.sets, pathValue{path, entries[k]})
			}
		}
	}
}

// twinPlan is what the configurations want of one twin.
type twinPlan struct {
	kinds    []ConfigurationKind // the kinds whose statuses this twin's plan decides
	module   *modulePlan         // edge content; nil leaves desired to ADM
	statuses map[string]string   // edge statuses (on $edgeAgent)
	adm      []*Configuration    // ADM configurations targeting the twin, lowest first
}

// apply computes the desired properties and configuration statuses the
// plan wants of t. It does not modify t.
func (p twinPlan) apply(t Twin, set *configSet) (map[string]any, map[string]string) {
	var desired map[string]any
	if p.module != nil && p.module.replace != nil {
		desired = MergePatch(nil, p.module.replace)
	} else {
		desired = MergePatch(nil, t.Desired)
	}
	if p.module != nil {
		for _, sv := range p.module.sets {
			desired = setPath(desired, sv.path, sv.value, false)
		}
	}
	owned := ownedLeaves(p.adm)
	for _, id := range sortedKeys(t.Configurations) {
		c := set.known[id]
		if t.Configurations[id] != StatusApplied || c == nil || !slices.Contains(p.kinds, c.Content.Kind()) || c.Content.Kind() == EdgeDeployment || slices.Contains(p.adm, c) {
			continue
		}
		desired = removeContent(desired, c, owned) // it no longer targets the twin
	}
	for _, c := range p.adm {
		content := admContent(c)
		for _, k := range sortedKeys(content) {
			if path, ok := desiredPath(k); ok {
				desired = setPath(desired, path, content[k], true)
			}
		}
	}

	statuses := map[string]string{}
	for id, st := range t.Configurations {
		if c := set.known[id]; c != nil && set.live(id) && !slices.Contains(p.kinds, c.Content.Kind()) {
			statuses[id] = st // another evaluation decides it
		}
	}
	for id, st := range p.statuses {
		statuses[id] = st
	}
	for _, c := range p.adm {
		statuses[c.ID] = StatusTargeted
		if owns(owned, c.ID) || len(contentLeaves(c.ID, admContent(c))) == 0 {
			statuses[c.ID] = StatusApplied
		}
	}
	if len(statuses) == 0 {
		statuses = nil
	}
	return desired, statuses
}

// converge writes what the plan wants of a twin, if that differs from what
// it has: desired changes bump the desired version and reach connected
// devices as a merge patch.
func (s *Service) converge(ctx context.Context, t Twin, set *configSet, p twinPlan) error {
	desired, statuses := p.apply(t, set)
	if sameJSON(desired, orEmpty(t.Desired)) && sameStatuses(statuses, t.Configurations) {
		return nil
	}
	_, err := s.updateTwin(ctx, t.DeviceID, t.ModuleID, "", func(cur *Twin) (TwinChange, error) {
		desired, statuses := p.apply(*cur, set)
		var ch TwinChange
		if !sameJSON(desired, orEmpty(cur.Desired)) {
			ch.Desired = mergeDiff(cur.Desired, desired)
			cur.Desired = desired
		}
		cur.Configurations = statuses
		return ch, nil
	})
	if fault.Is(err, fault.NotFound) {
		return nil // deleted meanwhile
	}
	return err
}

func sameStatuses(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// admContent is an ADM configuration's twin content.
func admContent(c *Configuration) map[string]any {
	if c.Content.DeviceContent != nil {
		return c.Content.DeviceContent
	}
	return c.Content.ModuleContent
}

// leaf is one value a configuration sets: a scalar, array, null (a
// removal) or empty object at a path below properties.desired.
type leaf struct {
	owner string
	path  []string
	value any
	floor int // removing the leaf prunes emptied objects down to this depth
}

// contentLeaves flattens ADM content into leaves.
func contentLeaves(owner string, content map[string]any) []leaf {
	var out []leaf
	var walk func(path []string, v any, floor int)
	walk = func(path []string, v any, floor int) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for _, k := range sortedKeys(m) {
				walk(append(slices.Clip(path), k), m[k], floor)
			}
			return
		}
		if len(path) > 0 {
			out = append(out, leaf{owner: owner, path: path, value: v, floor: floor})
		}
	}
	for _, k := range sortedKeys(content) {
		if path, ok := desiredPath(k); ok {
			walk(path, content[k], max(len(path), 1))
		}
	}
	return out
}

// ownedLeaves folds the leaves of ADM configurations in ascending
// precedence: a later leaf takes its path, a scalar replaces what lies
// below it, and anything set below a scalar replaces the scalar. What
// remains is who owns each value in the result.
func ownedLeaves(cands []*Configuration) []leaf {
	var owned []leaf
	for _, c := range cands {
		for _, l := range contentLeaves(c.ID, admContent(c)) {
			_, object := l.value.(map[string]any)
			kept := owned[:0:0]
			for _, o := range owned {
				_, oObject := o.value.(map[string]any)
				switch {
				case slices.Equal(o.path, l.path):
					continue
				case !object && isPrefix(l.path, o.path):
					continue // below a value l replaces
				case !oObject && isPrefix(o.path, l.path):
					continue // a scalar l writes below
				}
				kept = append(kept, o)
			}
			owned = append(kept, l)
		}
	}
	return owned
}

func owns(owned []leaf, id string) bool {
	for _, l := range owned {
		if l.owner == id {
			return true
		}
	}
	return false
}

// isPrefix reports whether p is a proper prefix of q.
func isPrefix(p, q []string) bool {
	return len(p) < len(q) && slices.Equal(p, q[:len(p)])
}

// removeContent removes from desired the values c set that still hold
// them, except where a configuration that targets the twin owns the path.
func removeContent(desired map[string]any, c *Configuration, owned []leaf) map[string]any {
	for _, l := range contentLeaves(c.ID, admContent(c)) {
		if l.value == nil || overlaps(owned, l.path) {
			continue
		}
		if cur, ok := twinquery.Path(l.path).Lookup(desired); ok && sameJSON(cur, l.value) {
			deletePath(desired, l.path, l.floor)
		}
	}
	return desired
}

func overlaps(owned []leaf, path []string) bool {
	for _, o := range owned {
		if slices.Equal(o.path, path) || isPrefix(o.path, path) || isPrefix(path, o.path) {
			return true
		}
	}
	return false
}
