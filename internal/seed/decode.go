package seed

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits on what a seed file may make the decoder do. Aliases can make a
// small file describe a huge document ("billion laughs"); the node budget
// bounds the nodes visited however the document is built. Without aliases
// a node takes at least two bytes, so the budget of nodeBudget(len) never
// refuses a file that does not use them to multiply its size.
const (
	MaxFileBytes = 16 << 20
	maxDepth     = 64
)

// nodeBudget is how many nodes a file of n bytes may expand to.
func nodeBudget(n int) int { return 2*n + 100_000 }

// decoder walks a parsed YAML document against the seed schema, collecting
// every problem with its position instead of stopping at the first.
type decoder struct {
	errs    []*Error
	budget  int // nodes left to visit
	visited int
	halted  bool // the node budget ran out; one error says so
}

// fail records a problem at n's position.
func (d *decoder) fail(n *yaml.Node, format string, args ...any) {
	e := &Error{Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// resolve follows aliases to the node they name, without counting it.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// visit resolves aliases and counts n against the node budget; it returns
// nil when the budget is spent.
func (d *decoder) visit(n *yaml.Node) *yaml.Node {
	n = resolve(n)
	if d.halted || n == nil {
		return nil
	}
	if d.visited++; d.visited > d.budget {
		d.halted = true
		d.fail(n, "the document expands to more than %d nodes; do aliases repeat large parts of it?", d.budget)
		return nil
	}
	return n
}

// field is one key of a schema object: its handler gets the value node.
// Ignored fields are read-only fields `az` prints (etag, timestamps), taken
// and dropped so that its output can be pasted.
type field struct {
	name    string
	handle  func(*yaml.Node)
	ignored bool
}

// object walks a mapping whose keys must be among fields; what names the
// object in messages ("enrollment"). It reports unknown and repeated keys
// and returns false when n is not a mapping.
func (d *decoder) object(n *yaml.Node, what string, fields []field) bool {
	if n = d.visit(n); n == nil {
		return false
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, "%s must be a mapping of fields, not %s", what, describe(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.visit(n.Content[i]), n.Content[i+1]
		if k == nil {
			return false
		}
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			d.fail(k, "%s has a key that is not a string (%s)", what, describe(k))
			continue
		}
		if seen[k.Value] {
			d.fail(k, "field %q is given twice in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		f, ok := lookup(fields, k.Value)
		switch {
		case !ok:
			d.fail(k, "unknown field %q in %s%s", k.Value, what, suggest(fields, k.Value))
		case !f.ignored:
			f.handle(v)
		}
	}
	return true
}

func lookup(fields []field, name string) (field, bool) {
	for _, f := range fields {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// suggest names a known field that differs from name only in case or by
// one edit, the usual typos ("enrolmentId", "RegistrationId").
func suggest(fields []field, name string) string {
	for _, f := range fields {
		if !f.ignored && (strings.EqualFold(f.name, name) || oneEdit(strings.ToLower(f.name), strings.ToLower(name))) {
			return fmt.Sprintf(" (did you mean %q?)", f.name)
		}
	}
	return ""
}

// oneEdit says whether a and b differ by one inserted, deleted or changed
// byte, or two neighbours swapped.
func oneEdit(a, b string) bool {
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(a)-len(b) > 1 || a == b {
		return false
	}
	i := 0
	for i < len(b) && a[i] == b[i] {
		i++
	}
	if len(a) != len(b) {
		return a[i+1:] == b[i:]
	}
	swapped := i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
	return swapped || a[i+1:] == b[i+1:]
}

// list walks a sequence, calling each for every item.
func (d *decoder) list(n *yaml.Node, what string, each func(*yaml.Node)) {
	if n = d.visit(n); n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, "%s must be a list, not %s", what, describe(n))
		return
	}
	for _, item := range n.Content {
		each(item)
	}
}

// str reads a string; null leaves dst alone (az prints absent keys as
// null). Numbers and booleans are refused so that an unquoted 0123 or
// "yes" never turns into something else silently.
func (d *decoder) str(dst *string, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if v, ok := d.text(n, what); ok {
			*dst = v
		}
	}
}

// text reads a string node; ok is false for null and for anything that is
// not a string (which it reports).
func (d *decoder) text(n *yaml.Node, what string) (string, bool) {
	if n = d.visit(n); n == nil || isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.fail(n, "%s must be a string, not %s%s", what, describe(n), quoteHint(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(dst *bool, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n = d.visit(n); n == nil || isNull(n) {
			return
		}
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, "%s must be true or false, not %s", what, describe(n))
			return
		}
		*dst = b
	}
}

func (d *decoder) integer(dst *int, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n = d.visit(n); n == nil || isNull(n) {
			return
		}
		var v int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil || v < math.MinInt32 || v > math.MaxInt32 {
			d.fail(n, "%s must be a whole number, not %s", what, describe(n))
			return
		}
		*dst = int(v)
	}
}

// strings reads a list of strings, or one string of comma-separated items
// (how Azure's management API writes policy rights).
func (d *decoder) stringList(dst *[]string, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n = d.visit(n); n == nil || isNull(n) {
			return
		}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			*dst = append(*dst, n.Value)
			return
		}
		d.list(n, what, func(item *yaml.Node) {
			var s string
			d.str(&s, what+" item")(item)
			*dst = append(*dst, s)
		})
	}
}

// stringMap reads a mapping of strings to strings (labels, metric queries).
func (d *decoder) stringMap(dst *map[string]string, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n = d.visit(n); n == nil || isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, "%s must be a mapping of names to strings, not %s", what, describe(n))
			return
		}
		out := map[string]string{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := d.visit(n.Content[i])
			if k == nil {
				return
			}
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				d.fail(k, "%s has a key that is not a string (%s)", what, describe(k))
				continue
			}
			if _, dup := out[k.Value]; dup {
				d.fail(k, "%q is given twice in %s", k.Value, what)
				continue
			}
			var v string
			d.str(&v, what+"."+k.Value)(n.Content[i+1])
			out[k.Value] = v
		}
		*dst = out
	}
}

// document reads a free-form JSON object (twin tags and properties,
// deployment content): YAML values become what encoding/json with
// UseNumber would make of the same JSON, so they compare and store exactly
// as values sent to the API do.
func (d *decoder) document(dst *map[string]any, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n = d.visit(n); n == nil || isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, "%s must be a mapping, not %s", what, describe(n))
			return
		}
		if v, ok := d.value(n, what, 0).(map[string]any); ok {
			*dst = v
		}
	}
}

// value converts any node to a JSON value: map[string]any, []any, string,
// json.Number, bool or nil. On failure it records why and returns nil.
func (d *decoder) value(n *yaml.Node, what string, depth int) any {
	if n = d.visit(n); n == nil {
		return nil
	}
	if depth > maxDepth {
		d.fail(n, "%s nests deeper than %d levels", what, maxDepth)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := d.visit(n.Content[i])
			if k == nil {
				return nil
			}
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				d.fail(k, "%s has a key that is not a string (%s); JSON objects have string keys", what, describe(k))
				continue
			}
			if _, dup := out[k.Value]; dup {
				d.fail(k, "%q is given twice in %s", k.Value, what)
				continue
			}
			out[k.Value] = d.value(n.Content[i+1], what+"."+k.Value, depth+1)
		}
		return out
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			out = append(out, d.value(item, fmt.Sprintf("%s[%d]", what, i), depth+1))
		}
		return out
	case yaml.ScalarNode:
		return d.scalar(n, what)
	}
	d.fail(n, "%s holds %s, which JSON has no value for", what, describe(n))
	return nil
}

func (d *decoder) scalar(n *yaml.Node, what string) any {
	switch n.Tag {
	case "!!str":
		return n.Value
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int", "!!float":
		// A number written as JSON writes it is kept verbatim, as the API
		// keeps it; other YAML spellings (0x10, 0o17, +1, .5) are converted.
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && jsonNumber(n.Value) && !math.IsInf(f, 0) {
			return json.Number(n.Value)
		}
		var i int64
		if n.Tag == "!!int" && n.Decode(&i) == nil {
			return json.Number(strconv.FormatInt(i, 10))
		}
		var f float64
		if n.Decode(&f) == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
		d.fail(n, "%s is %q, which is no JSON number (or none a JSON reader can hold)", what, clip(n.Value))
		return nil
	}
	d.fail(n, "%s holds %s, which JSON has no value for", what, describe(n))
	return nil
}

// jsonNumber says whether s is spelt as a JSON number.
func jsonNumber(s string) bool {
	return s != "" && (s[0] == '-' || s[0] >= '0' && s[0] <= '9') && json.Valid([]byte(s))
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what a node is, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", clip(n.Value))
		case "!!int", "!!float":
			return "the number " + clip(n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "null"
		case "!!timestamp":
			return "the timestamp " + clip(n.Value)
		}
		return fmt.Sprintf("a value tagged %s", clip(n.Tag))
	}
	return "something else"
}

// quoteHint tells how to make a number or boolean a string.
func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!str" {
		return fmt.Sprintf(" (quote it: \"%s\")", clip(n.Value))
	}
	return ""
}

func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:37]) + "..."
	}
	return s
}

// sortErrors orders problems by position, first line first.
func sortErrors(errs []*Error) {
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Line != errs[j].Line {
			return errs[i].Line < errs[j].Line
		}
		return errs[i].Column < errs[j].Column
	})
}
