package twinquery

import (
	"math"
	"strings"
)

// Match reports whether doc satisfies the condition, that is whether the
// condition evaluates to exactly true. doc is a decoded JSON object whose
// values are string, bool, nil, json.Number, float64 or another Go number
// type, []any and map[string]any; values of other types are defined but
// compare false with everything. A nil *Condition matches every document.
func (c *Condition) Match(doc map[string]any) bool {
	if c == nil || c.root == nil {
		return true
	}
	return isTrue(c.root.eval(doc))
}

func (n *constNode) eval(map[string]any) value { return n.v }

func (n *pathNode) eval(doc map[string]any) value {
	v, ok := n.path.Lookup(doc)
	if !ok {
		return value{}
	}
	return fromAny(v)
}

func (n *negNode) eval(doc map[string]any) value {
	if x := n.x.eval(doc); x.k == kNum {
		return numV(-x.n)
	}
	return value{}
}

func (n *notNode) eval(doc map[string]any) value {
	if x := n.x.eval(doc); x.k == kBool {
		return boolV(!x.b)
	}
	return value{}
}

// eval uses three-valued logic: a false side decides AND, a true side
// decides OR, and otherwise any non-boolean side gives undefined.
func (n *logicNode) eval(doc map[string]any) value {
	decisive := n.or // AND is decided by false, OR by true
	l := n.l.eval(doc)
	if l.k == kBool && l.b == decisive {
		return l
	}
	r := n.r.eval(doc)
	switch {
	case r.k == kBool && r.b == decisive:
		return r
	case l.k == kBool && r.k == kBool:
		return boolV(!decisive)
	}
	return value{}
}

func (n *arithNode) eval(doc map[string]any) value {
	l, r := n.l.eval(doc), n.r.eval(doc)
	if !bothNum(l, r) {
		return value{}
	}
	var x float64
	switch n.op {
	case '+':
		x = l.n + r.n
	case '-':
		x = l.n - r.n
	case '*':
		x = l.n * r.n
	case '/':
		x = l.n / r.n
	case '%':
		x = math.Mod(l.n, r.n)
	}
	if r.n == 0 && (n.op == '/' || n.op == '%') || math.IsNaN(x) {
		return value{}
	}
	return numV(x)
}

func (n *cmpNode) eval(doc map[string]any) value {
	return compare(n.op, n.l.eval(doc), n.r.eval(doc))
}

// compare applies op. Undefined on either side gives undefined; different
// kinds give false for every operator.
func compare(op cmpOp, l, r value) value {
	switch {
	case l.k == kUndef || r.k == kUndef:
		return value{}
	case l.k != r.k:
		return boolV(false)
	case op == opEq:
		return boolV(equal(l, r))
	case op == opNe:
		return boolV(!equal(l, r) && l.k != kOther)
	case l.k == kNum:
		return boolV(order(op, l.n < r.n, l.n == r.n, l.n > r.n))
	case l.k == kStr:
		c := strings.Compare(l.s, r.s)
		return boolV(order(op, c < 0, c == 0, c > 0))
	}
	return boolV(false)
}

// order evaluates an ordering operator from the three outcomes of a
// comparison; all three are false for NaN.
func order(op cmpOp, lt, eq, gt bool) bool {
	switch op {
	case opLt:
		return lt
	case opLe:
		return lt || eq
	case opGt:
		return gt
	case opGe:
		return gt || eq
	}
	return false
}

// eval: undefined is never in a list; otherwise IN is true when some item is
// equal, and NIN when none is.
func (n *inNode) eval(doc map[string]any) value {
	x := n.x.eval(doc)
	if x.k == kUndef {
		return value{}
	}
	found := false
	for _, item := range n.list {
		if equal(x, item) {
			found = true
			break
		}
	}
	return boolV(found != n.not)
}

func (n *callNode) eval(doc map[string]any) value {
	args := make([]value, len(n.args))
	for i, a := range n.args {
		args[i] = a.eval(doc)
	}
	return n.fn.eval(args)
}
