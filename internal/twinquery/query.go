package twinquery

import (
	"math"
	"strconv"
	"strings"
)

// maxTop is the largest accepted TOP value.
const maxTop = math.MaxInt32

// Query is a parsed SELECT statement.
type Query struct {
	Top       int        // the n of TOP n; 0 when there is no TOP
	SelectAll bool       // SELECT *
	Fields    []Field    // projected paths when !SelectAll, in order
	Count     string     // the alias of COUNT() if selected, "" otherwise
	From      string     // the collection as written, e.g. "devices.modules"; compare case-insensitively
	Where     *Condition // nil when there is no WHERE
	GroupBy   *Path      // nil when there is no GROUP BY
}

// Field is one projected path in a SELECT list.
type Field struct {
	Path  Path
	Alias string // the name after AS, or "" when there is none
}

// Parse parses a full query:
//
//	SELECT [TOP n] ( * | <path> [AS alias] {, ...} | COUNT() AS alias ) FROM <collection> [WHERE <condition>] [GROUP BY <path>]
//
// Paths and COUNT() may be mixed in one SELECT list, as in a GROUP BY query.
// The caller validates From. Errors are *SyntaxError or *UnsupportedError.
func Parse(q string) (*Query, error) {
	p, err := newParser(q)
	if err != nil {
		return nil, err
	}
	return p.parseQuery()
}

func (p *parser) parseQuery() (*Query, error) {
	q := &Query{}
	steps := []func(*Query) error{p.parseSelect, p.parseFrom, p.parseWhere, p.parseGroupBy, p.parseEnd}
	for _, step := range steps {
		if err := step(q); err != nil {
			return nil, err
		}
	}
	return q, nil
}

func (p *parser) parseSelect(q *Query) error {
	if err := p.expectKeyword("SELECT"); err != nil {
		return err
	}
	if p.acceptKeyword("TOP") {
		if err := p.parseTop(q); err != nil {
			return err
		}
	}
	if p.peek().kind == tStar {
		p.next()
		q.SelectAll = true
		return nil
	}
	for {
		if err := p.parseSelectItem(q); err != nil {
			return err
		}
		if p.peek().kind != tComma {
			return nil
		}
		p.next()
	}
}

func (p *parser) parseTop(q *Query) error {
	t := p.next()
	if t.kind != tNumber || t.num < 1 || t.num > maxTop || t.num != math.Trunc(t.num) {
		return syntaxErr(t.pos, "expected a whole number from 1 after TOP, found "+describe(t))
	}
	q.Top = int(t.num)
	return nil
}

func (p *parser) parseSelectItem(q *Query) error {
	t := p.peek()
	if t.kind == tIdent && p.peekNext().kind == tLParen {
		if !strings.EqualFold(t.text, "COUNT") {
			return unsupported(t.pos, "function "+strings.ToUpper(clip(t.text))+" in SELECT")
		}
		return p.parseCount(q)
	}
	path, err := p.parsePathRef()
	if err != nil {
		return err
	}
	f := Field{Path: path}
	if p.acceptKeyword("AS") {
		if f.Alias, err = p.parseAlias(); err != nil {
			return err
		}
	}
	q.Fields = append(q.Fields, f)
	return nil
}

// parseCount reads COUNT() AS alias.
func (p *parser) parseCount(q *Query) error {
	name := p.next()
	p.next() // '('
	if err := p.expect(tRParen, "')' after COUNT("); err != nil {
		return err
	}
	if err := p.expectKeyword("AS"); err != nil {
		return err
	}
	alias, err := p.parseAlias()
	if err != nil {
		return err
	}
	if q.Count != "" {
		return syntaxErr(name.pos, "more than one COUNT()")
	}
	q.Count = alias
	return nil
}

func (p *parser) parseAlias() (string, error) {
	t := p.peek()
	if t.kind != tIdent || isReserved(t.text) {
		return "", p.expected("an alias")
	}
	p.next()
	return t.text, nil
}

// parsePathRef reads a path that is not an expression: a SELECT item or the
// GROUP BY key.
func (p *parser) parsePathRef() (Path, error) {
	t := p.peek()
	if t.kind == tPath || (t.kind == tIdent && !isReserved(t.text)) {
		p.next()
		return t.path, nil
	}
	return nil, p.expected("a path")
}

func (p *parser) parseFrom(q *Query) error {
	if err := p.expectKeyword("FROM"); err != nil {
		return err
	}
	t := p.peek()
	if (t.kind == tIdent && !isReserved(t.text)) || (t.kind == tPath && !t.bracketed) {
		p.next()
		q.From = t.text
		return nil
	}
	return p.expected("a collection name")
}

func (p *parser) parseWhere(q *Query) error {
	if !p.acceptKeyword("WHERE") {
		return nil
	}
	root, err := p.parseOr()
	if err != nil {
		return err
	}
	q.Where = &Condition{root: root}
	return nil
}

func (p *parser) parseGroupBy(q *Query) error {
	if !p.acceptKeyword("GROUP") {
		return nil
	}
	if err := p.expectKeyword("BY"); err != nil {
		return err
	}
	path, err := p.parsePathRef()
	if err != nil {
		return err
	}
	q.GroupBy = &path
	return nil
}

func (p *parser) parseEnd(*Query) error {
	if t := p.peek(); isKeyword(t, "ORDER") {
		return unsupported(t.pos, "ORDER BY")
	}
	return p.expectEOF()
}

// String renders the query in a canonical form that parses back to an equal
// query: keywords in upper case, paths before COUNT() in the SELECT list.
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.Top > 0 {
		b.WriteString("TOP " + strconv.Itoa(q.Top) + " ")
	}
	q.writeSelectList(&b)
	b.WriteString(" FROM " + q.From)
	if q.Where != nil && q.Where.root != nil {
		b.WriteString(" WHERE " + q.Where.String())
	}
	if q.GroupBy != nil {
		b.WriteString(" GROUP BY " + q.GroupBy.String())
	}
	return b.String()
}

func (q *Query) writeSelectList(b *strings.Builder) {
	if q.SelectAll {
		b.WriteByte('*')
		return
	}
	items := make([]string, 0, len(q.Fields)+1)
	for _, f := range q.Fields {
		s := f.Path.String()
		if f.Alias != "" {
			s += " AS " + f.Alias
		}
		items = append(items, s)
	}
	if q.Count != "" {
		items = append(items, "COUNT() AS "+q.Count)
	}
	b.WriteString(strings.Join(items, ", "))
}
