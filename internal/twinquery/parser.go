package twinquery

import (
	"strconv"
	"strings"
)

// ParseCondition parses a bare condition: the body of a WHERE clause or a
// deployment target condition such as
// "tags.environment='test' AND capabilities.iotEdge = true". The condition
// "*" matches every document. Errors are *SyntaxError or *UnsupportedError.
func ParseCondition(s string) (*Condition, error) {
	p, err := newParser(s)
	if err != nil {
		return nil, err
	}
	if p.peek().kind == tStar && p.peekNext().kind == tEOF {
		return &Condition{}, nil
	}
	if t := p.peek(); t.kind == tEOF {
		return nil, syntaxErr(t.pos, "empty condition")
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if err := p.expectEOF(); err != nil {
		return nil, err
	}
	return &Condition{root: root}, nil
}

// parser is a recursive-descent parser over a token slice that ends in tEOF.
type parser struct {
	toks  []token
	i     int
	depth int
}

func newParser(src string) (*parser, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	return &parser{toks: toks}, nil
}

func (p *parser) peek() token { return p.toks[p.i] }

// peekNext returns the token after the next one.
func (p *parser) peekNext() token {
	if p.i+1 < len(p.toks) {
		return p.toks[p.i+1]
	}
	return p.toks[len(p.toks)-1]
}

// next consumes and returns a token; at the end it keeps returning tEOF.
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func isKeyword(t token, kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

func (p *parser) acceptKeyword(kw string) bool {
	if isKeyword(p.peek(), kw) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expectKeyword(kw string) error {
	if p.acceptKeyword(kw) {
		return nil
	}
	return p.expected(kw)
}

func (p *parser) expect(kind tokKind, what string) error {
	if p.peek().kind != kind {
		return p.expected(what)
	}
	p.next()
	return nil
}

func (p *parser) expectEOF() error {
	if t := p.peek(); t.kind != tEOF {
		return unexpected(t)
	}
	return nil
}

func (p *parser) expected(what string) error {
	t := p.peek()
	return syntaxErr(t.pos, "expected "+what+", found "+describe(t))
}

func unexpected(t token) error {
	return syntaxErr(t.pos, "unexpected "+describe(t))
}

// enter counts one level of nesting; every call that succeeds or fails
// must be paired with leave.
func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > MaxDepth {
		return syntaxErr(pos, "nesting deeper than "+strconv.Itoa(MaxDepth)+" levels")
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parseOr() (node, error) {
	l, err := p.parseAnd()
	for err == nil && p.acceptKeyword("OR") {
		var r node
		if r, err = p.parseAnd(); err == nil {
			l = &logicNode{or: true, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) parseAnd() (node, error) {
	l, err := p.parseNot()
	for err == nil && p.acceptKeyword("AND") {
		var r node
		if r, err = p.parseNot(); err == nil {
			l = &logicNode{l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) parseNot() (node, error) {
	t := p.peek()
	if !isKeyword(t, "NOT") {
		return p.parseCmp()
	}
	p.next()
	defer p.leave()
	if err := p.enter(t.pos); err != nil {
		return nil, err
	}
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	return &notNode{x: x}, nil
}

func (p *parser) parseCmp() (node, error) {
	l, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	if op, ok := cmpOpOf(t.kind); ok {
		p.next()
		r, err := p.parseAdd()
		if err != nil {
			return nil, err
		}
		return &cmpNode{op: op, l: l, r: r}, nil
	}
	switch {
	case isKeyword(t, "IN"):
		p.next()
		return p.parseIn(l, false)
	case isKeyword(t, "NIN"):
		p.next()
		return p.parseIn(l, true)
	case isKeyword(t, "NOT") && isKeyword(p.peekNext(), "IN"):
		p.next()
		p.next()
		return p.parseIn(l, true)
	}
	return l, nil
}

func cmpOpOf(k tokKind) (cmpOp, bool) {
	switch k {
	case tEq:
		return opEq, true
	case tNe:
		return opNe, true
	case tLt:
		return opLt, true
	case tLe:
		return opLe, true
	case tGt:
		return opGt, true
	case tGe:
		return opGe, true
	}
	return 0, false
}

// parseIn reads the list after IN or NIN, in brackets or parentheses.
func (p *parser) parseIn(x node, not bool) (node, error) {
	closer := tRBrack
	switch p.peek().kind {
	case tLBrack:
	case tLParen:
		closer = tRParen
	default:
		return nil, p.expected("'[' to start a list")
	}
	p.next()
	list, err := p.parseList(closer)
	if err != nil {
		return nil, err
	}
	return &inNode{x: x, list: list, not: not}, nil
}

// parseList reads comma-separated scalar constants up to closer; the opening
// bracket has been consumed.
func (p *parser) parseList(closer tokKind) ([]value, error) {
	var out []value
	if p.peek().kind == closer {
		p.next()
		return out, nil
	}
	for {
		if len(out) == MaxListLen {
			return nil, syntaxErr(p.peek().pos, "list longer than "+strconv.Itoa(MaxListLen)+" items")
		}
		v, err := p.parseScalar()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		switch t := p.next(); t.kind {
		case closer:
			return out, nil
		case tComma:
		default:
			return nil, unexpected(t)
		}
	}
}

// parseScalar reads a string, number (optionally negative), true, false or
// null.
func (p *parser) parseScalar() (value, error) {
	t := p.next()
	switch t.kind {
	case tNumber:
		return numV(t.num), nil
	case tString:
		return strV(t.str), nil
	case tLBrack:
		return value{}, unsupported(t.pos, "nested array")
	case tMinus:
		if n := p.peek(); n.kind == tNumber {
			p.next()
			return numV(-n.num), nil
		}
	case tIdent:
		if v, ok := keywordConst(t.text); ok && v.k != kUndef {
			return v, nil
		}
	}
	return value{}, syntaxErr(t.pos, "expected a constant, found "+describe(t))
}

// keywordConst recognises true, false, null and undefined.
func keywordConst(s string) (value, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return boolV(true), true
	case strings.EqualFold(s, "false"):
		return boolV(false), true
	case strings.EqualFold(s, "null"):
		return value{k: kNull}, true
	case strings.EqualFold(s, "undefined"):
		return value{}, true
	}
	return value{}, false
}

func (p *parser) parseAdd() (node, error) {
	l, err := p.parseMul()
	for err == nil && (p.peek().kind == tPlus || p.peek().kind == tMinus) {
		op := p.next().text[0]
		var r node
		if r, err = p.parseMul(); err == nil {
			l = &arithNode{op: op, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) parseMul() (node, error) {
	l, err := p.parseUnary()
	for err == nil && isMulOp(p.peek().kind) {
		op := p.next().text[0]
		var r node
		if r, err = p.parseUnary(); err == nil {
			l = &arithNode{op: op, l: l, r: r}
		}
	}
	return l, err
}

func isMulOp(k tokKind) bool { return k == tStar || k == tSlash || k == tPercent }

// parseUnary reads unary minus, folding it into numeric constants.
func (p *parser) parseUnary() (node, error) {
	t := p.peek()
	if t.kind != tMinus {
		return p.parsePrimary()
	}
	p.next()
	defer p.leave()
	if err := p.enter(t.pos); err != nil {
		return nil, err
	}
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if c, ok := x.(*constNode); ok && c.v.k == kNum {
		return &constNode{v: numV(-c.v.n)}, nil
	}
	return &negNode{x: x}, nil
}

func (p *parser) parsePrimary() (node, error) {
	t := p.next()
	switch t.kind {
	case tNumber:
		return &constNode{v: numV(t.num)}, nil
	case tString:
		return &constNode{v: strV(t.str)}, nil
	case tPath:
		return &pathNode{path: t.path}, nil
	case tIdent:
		return p.parseIdent(t)
	case tLParen:
		return p.parseParen(t)
	case tLBrack:
		list, err := p.parseList(tRBrack)
		if err != nil {
			return nil, err
		}
		return &constNode{v: arrV(list)}, nil
	}
	return nil, unexpected(t)
}

func (p *parser) parseParen(open token) (node, error) {
	defer p.leave()
	if err := p.enter(open.pos); err != nil {
		return nil, err
	}
	x, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if err := p.expect(tRParen, "')'"); err != nil {
		return nil, err
	}
	return x, nil
}

// parseIdent handles a plain identifier: a constant keyword, a function
// call or a one-segment path.
func (p *parser) parseIdent(t token) (node, error) {
	if v, ok := keywordConst(t.text); ok {
		return &constNode{v: v}, nil
	}
	if isReserved(t.text) {
		return nil, unexpected(t)
	}
	if p.peek().kind == tLParen {
		return p.parseCall(t)
	}
	return &pathNode{path: t.path}, nil
}

func (p *parser) parseCall(name token) (node, error) {
	fn, ok := lookupFunc(name.text)
	if !ok {
		return nil, unsupported(name.pos, "function "+strings.ToUpper(clip(name.text)))
	}
	open := p.next()
	defer p.leave()
	if err := p.enter(open.pos); err != nil {
		return nil, err
	}
	args, err := p.parseArgs()
	if err != nil {
		return nil, err
	}
	if len(args) != fn.arity {
		return nil, syntaxErr(name.pos, fn.name+" takes "+plural(fn.arity, "argument")+", got "+strconv.Itoa(len(args)))
	}
	return &callNode{fn: fn, args: args}, nil
}

// parseArgs reads call arguments; the '(' has been consumed.
func (p *parser) parseArgs() ([]node, error) {
	var args []node
	if p.peek().kind == tRParen {
		p.next()
		return args, nil
	}
	for {
		a, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		switch t := p.next(); t.kind {
		case tRParen:
			return args, nil
		case tComma:
		default:
			return nil, unexpected(t)
		}
	}
}

func plural(n int, noun string) string {
	s := strconv.Itoa(n) + " " + noun
	if n != 1 {
		s += "s"
	}
	return s
}
