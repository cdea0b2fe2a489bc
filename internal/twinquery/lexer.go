package twinquery

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // one plain identifier; may be a keyword or function name
	tPath           // a dotted path, or one with a [[...]] segment
	tNumber         // a decimal or hexadecimal number, without sign
	tString         // a quoted string
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tStar
	tPlus
	tMinus
	tSlash
	tPercent
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
)

// token is one lexical unit. text is the source text it came from.
type token struct {
	kind      tokKind
	pos       int
	text      string
	str       string  // decoded value of a tString
	num       float64 // value of a tNumber
	path      Path    // segments of a tIdent or tPath
	bracketed bool    // a tPath with at least one [[...]] segment
}

type lexer struct {
	src  string
	pos  int
	toks []token
}

// lex splits src into tokens, ending with a tEOF token.
func lex(src string) ([]token, error) {
	if len(src) > MaxInputLen {
		return nil, syntaxErr(MaxInputLen, "input longer than "+strconv.Itoa(MaxInputLen)+" bytes")
	}
	l := &lexer{src: src}
	for {
		l.skipSpace()
		if l.pos >= len(l.src) {
			l.toks = append(l.toks, token{kind: tEOF, pos: l.pos})
			return l.toks, nil
		}
		if err := l.lexToken(); err != nil {
			return nil, err
		}
	}
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.src) {
		switch l.src[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
		default:
			return
		}
	}
}

func (l *lexer) lexToken() error {
	c := l.src[l.pos]
	switch {
	case isIdentStart(c) || strings.HasPrefix(l.src[l.pos:], "[["):
		return l.lexPath()
	case isDigit(c):
		return l.lexNumber()
	case c == '\'' || c == '"':
		return l.lexString()
	}
	return l.lexPunct()
}

// emit appends a token spanning start to the current position.
func (l *lexer) emit(kind tokKind, start int) *token {
	l.toks = append(l.toks, token{kind: kind, pos: start, text: l.src[start:l.pos]})
	return &l.toks[len(l.toks)-1]
}

func (l *lexer) lexPunct() error {
	start := l.pos
	if kind, ok := twoCharPunct(l.src[start:]); ok {
		l.pos += 2
		l.emit(kind, start)
		return nil
	}
	kind, ok := oneCharPunct(l.src[start])
	if !ok {
		_, size := utf8.DecodeRuneInString(l.src[start:])
		return syntaxErr(start, "unexpected character "+show(l.src[start:start+size]))
	}
	l.pos++
	l.emit(kind, start)
	return nil
}

func twoCharPunct(s string) (tokKind, bool) {
	if len(s) < 2 {
		return 0, false
	}
	switch s[:2] {
	case "!=", "<>":
		return tNe, true
	case "<=":
		return tLe, true
	case ">=":
		return tGe, true
	}
	return 0, false
}

func oneCharPunct(c byte) (tokKind, bool) {
	switch c {
	case '(':
		return tLParen, true
	case ')':
		return tRParen, true
	case '[':
		return tLBrack, true
	case ']':
		return tRBrack, true
	case ',':
		return tComma, true
	case '*':
		return tStar, true
	case '+':
		return tPlus, true
	case '-':
		return tMinus, true
	case '/':
		return tSlash, true
	case '%':
		return tPercent, true
	case '=':
		return tEq, true
	case '<':
		return tLt, true
	case '>':
		return tGt, true
	}
	return 0, false
}

// lexPath reads segments separated by dots, with no space around the dots.
func (l *lexer) lexPath() error {
	start := l.pos
	var segs Path
	bracketed := false
	for {
		seg, br, err := l.lexSegment()
		if err != nil {
			return err
		}
		segs = append(segs, seg)
		bracketed = bracketed || br
		if l.pos >= len(l.src) || l.src[l.pos] != '.' {
			break
		}
		l.pos++
	}
	kind := tPath
	if len(segs) == 1 && !bracketed {
		kind = tIdent
	}
	t := l.emit(kind, start)
	t.path = segs
	t.bracketed = bracketed
	return nil
}

// lexSegment reads one plain or [[...]] segment and reports which it was.
func (l *lexer) lexSegment() (string, bool, error) {
	start := l.pos
	if strings.HasPrefix(l.src[start:], "[[") {
		end := strings.Index(l.src[start+2:], "]]")
		switch {
		case end < 0:
			return "", false, syntaxErr(start, "unterminated '[[' path segment")
		case end == 0:
			return "", false, syntaxErr(start, "empty '[[]]' path segment")
		}
		l.pos = start + 2 + end + 2
		return l.src[start+2 : start+2+end], true, nil
	}
	for l.pos < len(l.src) && isIdentChar(l.src[l.pos]) {
		l.pos++
	}
	if l.pos == start {
		return "", false, syntaxErr(start-1, "expected a path segment after '.'")
	}
	return l.src[start:l.pos], false, nil
}

func (l *lexer) lexNumber() error {
	start := l.pos
	v, err := l.scanNumber()
	if l.pos < len(l.src) && (isIdentChar(l.src[l.pos]) || l.src[l.pos] == '.') {
		for l.pos < len(l.src) && (isIdentChar(l.src[l.pos]) || l.src[l.pos] == '.') {
			l.pos++
		}
		return syntaxErr(start, "malformed number "+show(l.src[start:l.pos]))
	}
	if err != nil {
		return syntaxErr(start, "number out of range "+show(l.src[start:l.pos]))
	}
	l.emit(tNumber, start).num = v
	return nil
}

// scanNumber advances over a number and converts it. A malformed number
// stops early, leaving an identifier character or '.' to be reported.
func (l *lexer) scanNumber() (float64, error) {
	start := l.pos
	if s := l.src[start:]; len(s) > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		l.pos += 2
		if l.skip(isHexDigit) == 0 {
			l.pos = start + 1 // the 'x' is reported as malformed
			return 0, nil
		}
		u, err := strconv.ParseUint(l.src[start+2:l.pos], 16, 64)
		return float64(u), err
	}
	l.skip(isDigit)
	if l.peekByte() == '.' {
		l.pos++
		if l.skip(isDigit) == 0 {
			l.pos--
			return 0, nil
		}
	}
	if c := l.peekByte(); c == 'e' || c == 'E' {
		save := l.pos
		l.pos++
		if c := l.peekByte(); c == '+' || c == '-' {
			l.pos++
		}
		if l.skip(isDigit) == 0 {
			l.pos = save
			return 0, nil
		}
	}
	return strconv.ParseFloat(l.src[start:l.pos], 64)
}

func (l *lexer) peekByte() byte {
	if l.pos < len(l.src) {
		return l.src[l.pos]
	}
	return 0
}

// skip advances over bytes satisfying ok and returns how many it passed.
func (l *lexer) skip(ok func(byte) bool) int {
	start := l.pos
	for l.pos < len(l.src) && ok(l.src[l.pos]) {
		l.pos++
	}
	return l.pos - start
}

func (l *lexer) lexString() error {
	start := l.pos
	q := l.src[start]
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\'' && q == '\'' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '\'':
			b.WriteByte('\'')
			l.pos += 2
		case c == q:
			l.pos++
			l.emit(tString, start).str = b.String()
			return nil
		case c == '\\':
			if err := l.lexEscape(&b); err != nil {
				return err
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return syntaxErr(start, "unterminated string")
}

// lexEscape decodes the escape sequence at l.pos, which is a backslash.
func (l *lexer) lexEscape(b *strings.Builder) error {
	start := l.pos
	if start+1 >= len(l.src) {
		return syntaxErr(start, "unterminated string")
	}
	c := l.src[start+1]
	l.pos += 2
	switch c {
	case '\'', '"', '\\', '/':
		b.WriteByte(c)
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'u':
		r, err := l.lexUnicode(start)
		if err != nil {
			return err
		}
		b.WriteRune(r)
	default:
		_, size := utf8.DecodeRuneInString(l.src[start+1:])
		return syntaxErr(start, "invalid escape "+show(l.src[start:start+1+size]))
	}
	return nil
}

// lexUnicode reads the XXXX of \uXXXX, combining a UTF-16 surrogate pair
// written as two escapes. A lone surrogate becomes U+FFFD.
func (l *lexer) lexUnicode(start int) (rune, error) {
	r, err := l.hex4(start)
	if err != nil || !utf16.IsSurrogate(r) {
		return r, err
	}
	if strings.HasPrefix(l.src[l.pos:], `\u`) {
		save := l.pos
		l.pos += 2
		if r2, err := l.hex4(save); err == nil {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d, nil
			}
		}
		l.pos = save
	}
	return utf8.RuneError, nil
}

func (l *lexer) hex4(start int) (rune, error) {
	end := l.pos + 4
	if end > len(l.src) {
		end = len(l.src)
	}
	digits := l.src[l.pos:end]
	if len(digits) < 4 || !allHex(digits) {
		return 0, syntaxErr(start, "invalid escape "+show(l.src[start:end]))
	}
	n, _ := strconv.ParseUint(digits, 16, 32)
	l.pos = end
	return rune(n), nil
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHexDigit(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func isIdentStart(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c == '_' || c == '$'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }
