package twinquery

import (
	"strconv"
	"strings"
)

// Condition is a parsed WHERE body or deployment target condition. A nil
// *Condition, like the parse of "*", matches every document.
type Condition struct {
	root node // nil matches everything
}

// node is one expression in a condition tree.
type node interface {
	eval(doc map[string]any) value
	write(b *strings.Builder)
	prec() int
	walk(visit func(Path))
}

// Binding strength, loosest first, used to decide where String needs
// parentheses.
const (
	precOr = iota + 1
	precAnd
	precNot
	precCmp
	precAdd
	precMul
	precUnary
	precPrimary
)

type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
)

func (op cmpOp) String() string {
	return [...]string{"=", "!=", "<", "<=", ">", ">="}[op]
}

type (
	constNode struct{ v value }
	pathNode  struct{ path Path }
	negNode   struct{ x node }
	notNode   struct{ x node }
	arithNode struct {
		op   byte // one of + - * / %
		l, r node
	}
	cmpNode struct {
		op   cmpOp
		l, r node
	}
	inNode struct {
		x    node
		list []value
		not  bool // NIN
	}
	logicNode struct {
		or   bool // OR, else AND
		l, r node
	}
	callNode struct {
		fn   funcSpec
		args []node
	}
)

func (*constNode) prec() int { return precPrimary }
func (*pathNode) prec() int  { return precPrimary }
func (*callNode) prec() int  { return precPrimary }
func (*negNode) prec() int   { return precUnary }
func (*notNode) prec() int   { return precNot }
func (*cmpNode) prec() int   { return precCmp }
func (*inNode) prec() int    { return precCmp }

func (n *arithNode) prec() int {
	if n.op == '+' || n.op == '-' {
		return precAdd
	}
	return precMul
}

func (n *logicNode) prec() int {
	if n.or {
		return precOr
	}
	return precAnd
}

// writeChild writes n, in parentheses if it binds looser than least.
func writeChild(b *strings.Builder, n node, least int) {
	if n.prec() >= least {
		n.write(b)
		return
	}
	b.WriteByte('(')
	n.write(b)
	b.WriteByte(')')
}

// writeBinary writes a left-associative operation of precedence p.
func writeBinary(b *strings.Builder, l node, op string, r node, p int) {
	writeChild(b, l, p)
	b.WriteString(" " + op + " ")
	writeChild(b, r, p+1)
}

func (n *constNode) write(b *strings.Builder) { writeValue(b, n.v) }
func (n *pathNode) write(b *strings.Builder)  { b.WriteString(n.path.String()) }

func (n *negNode) write(b *strings.Builder) {
	b.WriteByte('-')
	writeChild(b, n.x, precUnary)
}

func (n *notNode) write(b *strings.Builder) {
	b.WriteString("NOT ")
	writeChild(b, n.x, precNot)
}

func (n *arithNode) write(b *strings.Builder) {
	writeBinary(b, n.l, string(n.op), n.r, n.prec())
}

// write puts both operands at the next tighter level: comparisons do not chain.
func (n *cmpNode) write(b *strings.Builder) {
	writeChild(b, n.l, precAdd)
	b.WriteString(" " + n.op.String() + " ")
	writeChild(b, n.r, precAdd)
}

func (n *inNode) write(b *strings.Builder) {
	writeChild(b, n.x, precAdd)
	if n.not {
		b.WriteString(" NIN ")
	} else {
		b.WriteString(" IN ")
	}
	b.WriteByte('[')
	for i, v := range n.list {
		if i > 0 {
			b.WriteString(", ")
		}
		writeValue(b, v)
	}
	b.WriteByte(']')
}

func (n *logicNode) write(b *strings.Builder) {
	op := "AND"
	if n.or {
		op = "OR"
	}
	writeBinary(b, n.l, op, n.r, n.prec())
}

func (n *callNode) write(b *strings.Builder) {
	b.WriteString(n.fn.name + "(")
	for i, a := range n.args {
		if i > 0 {
			b.WriteString(", ")
		}
		writeChild(b, a, precOr)
	}
	b.WriteByte(')')
}

func (*constNode) walk(func(Path))         {}
func (n *pathNode) walk(visit func(Path))  { visit(n.path) }
func (n *negNode) walk(visit func(Path))   { n.x.walk(visit) }
func (n *notNode) walk(visit func(Path))   { n.x.walk(visit) }
func (n *inNode) walk(visit func(Path))    { n.x.walk(visit) }
func (n *arithNode) walk(visit func(Path)) { n.l.walk(visit); n.r.walk(visit) }
func (n *cmpNode) walk(visit func(Path))   { n.l.walk(visit); n.r.walk(visit) }
func (n *logicNode) walk(visit func(Path)) { n.l.walk(visit); n.r.walk(visit) }

func (n *callNode) walk(visit func(Path)) {
	for _, a := range n.args {
		a.walk(visit)
	}
}

// String renders the condition in a canonical form that parses back to an
// equivalent condition: keywords in upper case, single-quoted strings,
// decimal numbers, and only the parentheses the structure needs. A condition
// that matches everything renders as "*".
func (c *Condition) String() string {
	if c == nil || c.root == nil {
		return "*"
	}
	var b strings.Builder
	c.root.write(&b)
	return b.String()
}

// Paths lists every path the condition reads, once each, in the order they
// first appear, so that callers can reject fields they do not know. The
// returned paths are copies.
func (c *Condition) Paths() []Path {
	if c == nil || c.root == nil {
		return nil
	}
	var out []Path
	seen := make(map[string]bool)
	c.root.walk(func(p Path) {
		key := pathKey(p)
		if !seen[key] {
			seen[key] = true
			out = append(out, p.clone())
		}
	})
	return out
}

// pathKey is an unambiguous map key for p.
func pathKey(p Path) string {
	var b strings.Builder
	for _, seg := range p {
		b.WriteString(strconv.Itoa(len(seg)))
		b.WriteByte(':')
		b.WriteString(seg)
	}
	return b.String()
}

// Equality is a top-level conjunct of a condition of the form
// path = 'string' (either side first): every document the condition
// matches holds exactly that string at that path. Stores use these to
// narrow what they read through their indexes.
type Equality struct {
	Path  Path
	Value string
}

// StringEqualities returns the conditions's top-level AND operands (through
// nested ANDs and their parentheses) that compare a path with a string
// constant using =, in order. Under OR or NOT nothing is implied, so a
// condition whose root is not an AND or such a comparison gives none.
func (c *Condition) StringEqualities() []Equality {
	if c == nil || c.root == nil {
		return nil
	}
	var out []Equality
	var visit func(n node)
	visit = func(n node) {
		switch n := n.(type) {
		case *logicNode:
			if !n.or {
				visit(n.l)
				visit(n.r)
			}
		case *cmpNode:
			if n.op != opEq {
				return
			}
			p, pok := n.l.(*pathNode)
			k, kok := n.r.(*constNode)
			if !pok || !kok {
				p, pok = n.r.(*pathNode)
				k, kok = n.l.(*constNode)
			}
			if pok && kok && k.v.k == kStr {
				out = append(out, Equality{Path: p.path.clone(), Value: k.v.s})
			}
		}
	}
	visit(c.root)
	return out
}
