// Package seed reads seed files, YAML (or JSON) documents that declare
// shared access policies, enrollments, enrollment groups and hub
// configurations, and applies them idempotently through the domain services
// (docs/seed.md). Parse checks the whole file before anything is written,
// naming every problem with its line and column; Apply then creates what is
// missing, updates what differs and leaves what is equal alone.
package seed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
)

// Version is the only schema version this package reads.
const Version = 1

// File is a parsed and validated seed file. Empty keys mean "generate on
// creation, keep afterwards".
type File struct {
	Name           string // the path as given, for messages
	DPSPolicies    []access.Policy
	HubPolicies    []access.Policy
	Enrollments    []dps.Enrollment
	Groups         []dps.Group
	Configurations []hub.Configuration
}

// Error is one problem in a seed file, at a position when it has one.
type Error struct {
	File         string
	Line, Column int // 1-based; 0 when the problem has no position
	Msg          string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed file %s: ", e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxReported is how many problems an error lists before it says how many
// more there are.
const maxReported = 20

// Parse reads and validates a seed file named name. It returns every
// problem it finds, each an *Error, joined; nothing it returns has been
// written anywhere.
func Parse(name string, data []byte) (*File, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{File: name, Msg: fmt.Sprintf("the file has %d bytes; the limit is %d", len(data), MaxFileBytes)}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(jsonAsYAML(data)))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "the file is empty; it needs at least \"version: 1\""}
		}
		return nil, &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		return nil, &Error{File: name, Line: line, Msg: "the file holds more than one YAML document; put everything in one"}
	}
	p := &parser{decoder: decoder{budget: nodeBudget(len(data))}, file: &File{Name: name}, ids: map[string]int{}}
	p.top(&root)
	if len(p.errs) > 0 {
		sortErrors(p.errs)
		return nil, joined(name, p.errs)
	}
	return p.file, nil
}

func joined(name string, list []*Error) error {
	errs := make([]error, 0, maxReported+1)
	for i, e := range list {
		if i == maxReported {
			errs = append(errs, &Error{File: name, Msg: fmt.Sprintf("and %d more problems", len(list)-maxReported)})
			break
		}
		e.File = name
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// parser turns the document into a File.
type parser struct {
	decoder
	file *File
	ids  map[string]int // kind + ID key → line first declared
}

func (p *parser) top(root *yaml.Node) {
	doc := root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			p.fail(doc, "the file is empty; it needs at least \"version: 1\"")
			return
		}
		doc = doc.Content[0]
	}
	if d := p.visit(doc); d != nil && isNull(d) {
		p.fail(d, "the file is empty; it needs at least \"version: 1\"")
		return
	}
	version, versionSet := -1, false // -1: not read (null, or refused with its own message)
	var versionNode *yaml.Node
	ok := p.object(doc, "the seed file", []field{
		{name: "version", handle: func(n *yaml.Node) { versionNode, versionSet = n, true; p.integer(&version, "version")(n) }},
		{name: "dps", handle: func(n *yaml.Node) { p.dps(n) }},
		{name: "hub", handle: func(n *yaml.Node) { p.hub(n) }},
	})
	switch {
	case !ok:
	case !versionSet:
		p.fail(doc, "the file has no version; start it with \"version: %d\"", Version)
	case version == -1:
		if v := resolve(versionNode); isNull(v) {
			p.fail(v, "version is empty; write \"version: %d\"", Version)
		}
	case version != Version:
		p.fail(versionNode, "version %d is not supported; this Usher reads version %d", version, Version)
	}
}

func (p *parser) dps(n *yaml.Node) {
	p.object(n, "dps", []field{
		{name: "policies", handle: func(n *yaml.Node) {
			p.list(n, "dps.policies", func(item *yaml.Node) { p.policy(item, access.DPS, &p.file.DPSPolicies) })
		}},
		{name: "enrollments", handle: func(n *yaml.Node) { p.list(n, "dps.enrollments", p.enrollment) }},
		{name: "enrollmentGroups", handle: func(n *yaml.Node) { p.list(n, "dps.enrollmentGroups", p.group) }},
	})
}

func (p *parser) hub(n *yaml.Node) {
	p.object(n, "hub", []field{
		{name: "policies", handle: func(n *yaml.Node) {
			p.list(n, "hub.policies", func(item *yaml.Node) { p.policy(item, access.Hub, &p.file.HubPolicies) })
		}},
		{name: "configurations", handle: func(n *yaml.Node) { p.list(n, "hub.configurations", p.configuration) }},
	})
}

// unique records that kind id is declared at n, and fails when it was
// declared before.
func (p *parser) unique(n *yaml.Node, kind, id string) {
	key := kind + "\x00" + id
	if first, dup := p.ids[key]; dup {
		p.fail(n, "%s %q is declared twice (first at line %d)", kind, id, first)
		return
	}
	p.ids[key] = n.Line
}

// check runs a domain validation and records its message at n.
func (p *parser) check(n *yaml.Node, prefix string, err error) bool {
	if err == nil {
		return true
	}
	p.fail(n, "%s%s", prefix, fault.MessageOf(err))
	return false
}

// key reads a symmetric key and checks it is base64 of 16 to 64 bytes.
func (p *parser) key(dst *string, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		k, ok := p.text(n, what)
		if !ok {
			return
		}
		if p.check(n, what+": ", sas.ValidateKey(k, dps.MinKeyBytes, dps.MaxKeyBytes)) {
			*dst = k
		}
	}
}

// id reads a string field and checks it with validate.
func (p *parser) id(dst *string, what string, validate func(string) error) func(*yaml.Node) {
	return func(n *yaml.Node) {
		v, ok := p.text(n, what)
		if !ok {
			return
		}
		if p.check(n, "", validate(v)) {
			*dst = v
		}
	}
}

func (p *parser) policy(n *yaml.Node, scope access.Scope, out *[]access.Policy) {
	what := string(scope) + " policy"
	pol := access.Policy{Scope: scope}
	var rights []string
	rightsSet := false
	var rightsNode *yaml.Node
	before := len(p.errs)
	if !p.object(n, what, []field{
		{name: "keyName", handle: p.id(&pol.Name, "keyName", access.ValidateName)},
		{name: "rights", handle: func(v *yaml.Node) { rightsNode, rightsSet = v, true; p.stringList(&rights, "rights")(v) }},
		{name: "primaryKey", handle: p.key(&pol.PrimaryKey, "primaryKey")},
		{name: "secondaryKey", handle: p.key(&pol.SecondaryKey, "secondaryKey")},
	}) {
		return
	}
	if pol.Name == "" && len(p.errs) == before {
		p.fail(n, "%s needs a keyName", what)
	}
	if !rightsSet {
		p.fail(n, "%s %q needs rights (%s)", what, pol.Name, strings.Join(access.AllRights(scope).Names(), ", "))
	} else if r, err := access.ParseRights(scope, rights); p.check(rightsNode, "rights: ", err) {
		pol.Rights = r
	}
	if pol.Name != "" {
		p.unique(n, what, strings.ToLower(pol.Name))
	}
	*out = append(*out, pol)
}
