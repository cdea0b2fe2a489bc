package twinquery

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// enrollmentJSON is a DPS individual enrollment.
const enrollmentJSON = `{"registrationId":"dev-1","provisioningStatus":"enabled",
	"capabilities":{"iotEdge":true},
	"initialTwin":{"tags":{"site":"lab-1","n":3},"properties":{"desired":{}}}}`

// twinJSON is an IoT Edge agent module twin.
const twinJSON = `{"deviceId":"edge-1","moduleId":"$edgeAgent",
	"tags":{"environment":"test","x":1,"nil":null,"list":["a","b"],"name":"operator's",
		"hex":31,"big":-1.5e3,"caf":"café","smile":"😀","Case":"upper"},
	"capabilities":{"iotEdge":true},
	"configurations":{"base-deploy":{"status":"Applied"}},
	"properties":{"desired":{"$version":7},
		"reported":{"lastDesiredVersion":7,"lastDesiredStatus":{"code":200},"temp":4.5}}}`

// decode parses a JSON object, with numbers as json.Number or float64.
func decode(t testing.TB, s string, useNumber bool) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	if useNumber {
		dec.UseNumber()
	}
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// The four queries Azure IoT Edge uses for deployment system metrics.
var systemMetricQueries = []string{
	`select deviceId from devices where capabilities.iotEdge = true and tags.environment='test'`,
	`select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[base-deploy]].status = 'Applied'`,
	`select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[base-deploy]].status = 'Applied' and properties.desired.$version = properties.reported.lastDesiredVersion and properties.reported.lastDesiredStatus.code = 200`,
	`SELECT COUNT() AS _count FROM devices WHERE tags.x = 1`,
}

type conditionCase struct {
	name string
	in   string
	want string // canonical String()
}

var goodConditions = []conditionCase{
	{"ok/target condition", `tags.environment='test' AND capabilities.iotEdge = true`, `tags.environment = 'test' AND capabilities.iotEdge = true`},
	{"ok/match all", ` * `, `*`},
	{"ok/not equal spelled <>", `a <> 1`, `a != 1`},
	{"ok/every comparison", `a = 1 OR a != 1 OR a < 1 OR a <= 1 OR a > 1 OR a >= 1`, `a = 1 OR a != 1 OR a < 1 OR a <= 1 OR a > 1 OR a >= 1`},
	{"ok/keywords any case", `not a aNd b Or c`, `NOT a AND b OR c`},
	{"ok/in with parentheses", `x IN ('a','b')`, `x IN ['a', 'b']`},
	{"ok/in empty list", `x IN []`, `x IN []`},
	{"ok/nin", `x NIN [1, -2.5, true, null]`, `x NIN [1, -2.5, true, null]`},
	{"ok/not in", `x NOT IN ['a']`, `x NIN ['a']`},
	{"ok/hex number", `0x1F = x`, `31 = x`},
	{"ok/upper hex number", `x = 0XfF`, `x = 255`},
	{"ok/exponent", `x = 1e3 OR x = 1.5E-7 OR x = 2e+2`, `x = 1000 OR x = 1.5e-07 OR x = 200`},
	{"ok/double quoted string", `"dq" = x`, `'dq' = x`},
	{"ok/doubled single quote", `a = 'operator''s'`, `a = 'operator\'s'`},
	{"ok/escaped quotes", `a = 'it\'s' OR a = "say \"hi\""`, `a = 'it\'s' OR a = 'say "hi"'`},
	{"ok/backslash and controls", `a = 'c:\\dir\ttab\n'`, `a = 'c:\\dir\u0009tab\u000a'`},
	{"ok/unicode escape", `a = 'caf\u00e9'`, `a = 'café'`},
	{"ok/surrogate pair", `a = '\ud83d\ude00'`, `a = '😀'`},
	{"ok/lone surrogate", `a = '\ud83dx'`, "a = '\uFFFDx'"},
	{"ok/empty string", `a = ''`, `a = ''`},
	{"ok/double not", `not not a`, `NOT NOT a`},
	{"ok/or inside and keeps parentheses", `(a OR b) AND c`, `(a OR b) AND c`},
	{"ok/and inside or drops parentheses", `a OR (b AND c)`, `a OR b AND c`},
	{"ok/right nested or keeps parentheses", `a OR (b OR c)`, `a OR (b OR c)`},
	{"ok/not of and", `NOT (a AND b)`, `NOT (a AND b)`},
	{"ok/not of comparison", `NOT (a = 1)`, `NOT a = 1`},
	{"ok/subtraction grouping", `a - (b - c) - d`, `a - (b - c) - d`},
	{"ok/arithmetic precedence", `a + b * c % d / e - f`, `a + b * c % d / e - f`},
	{"ok/arithmetic parentheses", `(a + b) * c > 5`, `(a + b) * c > 5`},
	{"ok/negative constant", `x = -5`, `x = -5`},
	{"ok/double negative folds", `x = -(-5)`, `x = 5`},
	{"ok/negative path", `- x = 1`, `-x = 1`},
	{"ok/negated sum", `-(a + b) < 0`, `-(a + b) < 0`},
	{"ok/minus minus path", `a - -b`, `a - -b`},
	{"ok/functions canonical names", `is_defined(a) AND starts_with(b, 'x') AND Ends_With(b, 'y') AND contains(b, 'z')`, `IS_DEFINED(a) AND STARTSWITH(b, 'x') AND ENDSWITH(b, 'y') AND CONTAINS(b, 'z')`},
	{"ok/type functions", `IS_NULL(a) OR IS_BOOL(a) OR IS_NUMBER(a) OR IS_STRING(a) OR IS_OBJECT(a) OR IS_ARRAY(a)`, `IS_NULL(a) OR IS_BOOL(a) OR IS_NUMBER(a) OR IS_STRING(a) OR IS_OBJECT(a) OR IS_ARRAY(a)`},
	{"ok/function of condition", `IS_BOOL(a = 1 OR b)`, `IS_BOOL(a = 1 OR b)`},
	{"ok/bracket segment", `configurations.[[base-deploy]].status = 'Applied'`, `configurations.[[base-deploy]].status = 'Applied'`},
	{"ok/bracket first segment", `[[weird key]].x = 1`, `[[weird key]].x = 1`},
	{"ok/bracket keyword segment", `[[and]] = 1`, `[[and]] = 1`},
	{"ok/needless brackets dropped", `a.[[plain]] = 1`, `a.plain = 1`},
	{"ok/keyword as later segment", `tags.and.or = 1`, `tags.and.or = 1`},
	{"ok/digit segment", `tags.1x = 1`, `tags.1x = 1`},
	{"ok/dollar segment", `properties.desired.$version = properties.reported.lastDesiredVersion`, `properties.desired.$version = properties.reported.lastDesiredVersion`},
	{"ok/function name as path", `contains = 1`, `contains = 1`},
	{"ok/comparison as operand", `(a = 1) = true`, `(a = 1) = true`},
	{"ok/array constant", `x = [1, -2, 'a', true, null]`, `x = [1, -2, 'a', true, null]`},
	{"ok/undefined constant", `x = undefined`, `x = undefined`},
	{"ok/bare constant", `TRUE`, `true`},
	{"ok/whitespace", "\ta\n=\r\n1 ", `a = 1`},
	{"ok/negative zero", `x = -0`, `x = -0`},
}

type errorCase struct {
	name        string
	in          string
	unsupported bool   // want *UnsupportedError, else *SyntaxError
	msg         string // the Error() text
}

var badConditions = []errorCase{
	{"syntax/empty", ``, false, "empty condition at offset 0"},
	{"syntax/only spaces", `   `, false, "empty condition at offset 3"},
	{"syntax/unclosed string", `a = 'abc`, false, "unterminated string at offset 4"},
	{"syntax/unclosed double quoted string", `a = "abc\"`, false, "unterminated string at offset 4"},
	{"syntax/unexpected close paren", `(a = 1) = 1)`, false, "unexpected ')' at offset 11"},
	{"syntax/unclosed paren", `(a = 1`, false, "expected ')', found end of input at offset 6"},
	{"syntax/dangling and", `a = 1 AND`, false, "unexpected end of input at offset 9"},
	{"syntax/bad character", `a # 1`, false, "unexpected character '#' at offset 2"},
	{"syntax/non-ascii character", `a = é`, false, "unexpected character 'é' at offset 4"},
	{"syntax/bang alone", `a ! 1`, false, "unexpected character '!' at offset 2"},
	{"syntax/double equals", `a == 1`, false, "unexpected '=' at offset 3"},
	{"syntax/chained comparison", `a = 1 = 2`, false, "unexpected '=' at offset 6"},
	{"syntax/keyword as path", `AND = 1`, false, "unexpected 'AND' at offset 0"},
	{"syntax/missing operand", `a = `, false, "unexpected end of input at offset 4"},
	{"syntax/two paths", `a b`, false, "unexpected 'b' at offset 2"},
	{"syntax/bad escape", `a = '\q'`, false, `invalid escape '\q' at offset 5`},
	{"syntax/short unicode escape", `a = '\u12'`, false, `invalid escape '\u12'' at offset 5`},
	{"syntax/control character", "a = 1 \x00", false, `unexpected character '\x00' at offset 6`},
	{"syntax/invalid utf-8", "a = 1 \xff", false, `unexpected character '\xff' at offset 6`},
	{"syntax/escape at end", `a = '\`, false, "unterminated string at offset 5"},
	{"syntax/malformed decimal", `a = 1.x`, false, "malformed number '1.x' at offset 4"},
	{"syntax/trailing dot number", `a = 1.`, false, "malformed number '1.' at offset 4"},
	{"syntax/malformed exponent", `a = 1e`, false, "malformed number '1e' at offset 4"},
	{"syntax/malformed hex", `a = 0x`, false, "malformed number '0x' at offset 4"},
	{"syntax/number then letters", `a = 12ab`, false, "malformed number '12ab' at offset 4"},
	{"syntax/number out of range", `a = 1e999`, false, "number out of range '1e999' at offset 4"},
	{"syntax/hex out of range", `a = 0x10000000000000000`, false, "number out of range '0x10000000000000000' at offset 4"},
	{"syntax/unterminated bracket segment", `a.[[b = 1`, false, "unterminated '[[' path segment at offset 2"},
	{"syntax/empty bracket segment", `a.[[]] = 1`, false, "empty '[[]]' path segment at offset 2"},
	{"syntax/trailing dot", `a. = 1`, false, "expected a path segment after '.' at offset 1"},
	{"syntax/leading dot", `.a = 1`, false, "unexpected character '.' at offset 0"},
	{"syntax/in without list", `a IN 'x'`, false, "expected '[' to start a list, found string 'x' at offset 5"},
	{"syntax/in list with path", `a IN [b]`, false, "expected a constant, found 'b' at offset 6"},
	{"syntax/in list mismatched close", `a IN [1)`, false, "unexpected ')' at offset 7"},
	{"syntax/in list missing comma", `a IN [1 2]`, false, "unexpected '2' at offset 8"},
	{"syntax/in list undefined", `a IN [undefined]`, false, "expected a constant, found 'undefined' at offset 6"},
	{"syntax/too many arguments", `IS_DEFINED(a, b)`, false, "IS_DEFINED takes 1 argument, got 2 at offset 0"},
	{"syntax/too few arguments", `STARTSWITH(a)`, false, "STARTSWITH takes 2 arguments, got 1 at offset 0"},
	{"syntax/unclosed call", `IS_NULL(a`, false, "unexpected end of input at offset 9"},
	{"syntax/star in condition", `* AND a`, false, "unexpected '*' at offset 0"},
	{"syntax/long token is clipped", `a = 1 ` + strings.Repeat("b", 100), false, "unexpected '" + strings.Repeat("b", 40) + "...' at offset 6"},
	{"unsupported/function", `ST_DISTANCE(a, b) < 1`, true, "unsupported function ST_DISTANCE at offset 0"},
	{"unsupported/lower case function", `x = 1 AND st_within(a)`, true, "unsupported function ST_WITHIN at offset 10"},
	{"unsupported/nested array", `a IN [1, [2]]`, true, "unsupported nested array at offset 9"},
}

func TestParseCondition(t *testing.T) {
	for _, tc := range goodConditions {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCondition(tc.in)
			if err != nil {
				t.Fatalf("ParseCondition(%q): %v", tc.in, err)
			}
			if got := c.String(); got != tc.want {
				t.Errorf("ParseCondition(%q).String() = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseConditionErrors(t *testing.T) {
	for _, tc := range badConditions {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCondition(tc.in)
			if err == nil {
				t.Fatalf("ParseCondition(%q) = %q, want error %q", tc.in, c, tc.msg)
			}
			checkError(t, tc, err)
		})
	}
}

// checkError checks the error's type, its offset and its exact message.
func checkError(t *testing.T, tc errorCase, err error) {
	t.Helper()
	var syn *SyntaxError
	var uns *UnsupportedError
	switch {
	case tc.unsupported && !errors.As(err, &uns):
		t.Errorf("error %v is %T, want *UnsupportedError", err, err)
	case !tc.unsupported && !errors.As(err, &syn):
		t.Errorf("error %v is %T, want *SyntaxError", err, err)
	}
	if got := err.Error(); got != tc.msg {
		t.Errorf("error = %q, want %q", got, tc.msg)
	}
}

func TestLimits(t *testing.T) {
	nest := func(n int, open, close string) string {
		return strings.Repeat(open, n) + "a" + strings.Repeat(close, n)
	}
	list := func(n int) string {
		return "a IN [" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
	}
	longOK := "a = '" + strings.Repeat("x", MaxInputLen-6) + "'"
	ok := []string{nest(MaxDepth, "(", ")"), nest(MaxDepth, "NOT ", ""), nest(MaxDepth, "-", ""),
		nest(MaxDepth, "IS_NULL(", ")"), list(MaxListLen), longOK}
	for _, in := range ok {
		if _, err := ParseCondition(in); err != nil {
			t.Errorf("ParseCondition(%.40q...): %v", in, err)
		}
	}
	bad := []errorCase{
		{"syntax/too deep parentheses", nest(MaxDepth+1, "(", ")"), false, "nesting deeper than 64 levels at offset 64"},
		{"syntax/too deep not", nest(MaxDepth+1, "NOT ", ""), false, "nesting deeper than 64 levels at offset 256"},
		{"syntax/too deep minus", nest(MaxDepth+1, "-", ""), false, "nesting deeper than 64 levels at offset 64"},
		{"syntax/too deep calls", nest(MaxDepth+1, "IS_NULL(", ")"), false, "nesting deeper than 64 levels at offset 519"},
		{"syntax/list too long", list(MaxListLen + 1), false, "list longer than 1000 items at offset 2006"},
		{"syntax/input too long", longOK + " ", false, "input longer than 65536 bytes at offset 65536"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCondition(tc.in)
			if err == nil {
				t.Fatal("no error")
			}
			checkError(t, tc, err)
		})
	}
}

type matchCase struct {
	name string
	cond string
	twin bool // match against twinJSON, else enrollmentJSON
	want bool
}

var matchCases = []matchCase{
	{"ok/enrollment filter", `provisioningStatus = 'enabled' AND initialTwin.tags.site = 'lab-1'`, false, true},
	{"ok/match all", `*`, false, true},
	{"ok/string equal", `registrationId = 'dev-1'`, false, true},
	{"ok/string not equal", `registrationId != 'dev-2'`, false, true},
	{"ok/string not equal spelled <>", `registrationId <> 'dev-1'`, false, false},
	{"ok/string less", `registrationId < 'dev-2'`, false, true},
	{"ok/string greater or equal", `registrationId >= 'dev-1'`, false, true},
	{"ok/strings compare by bytes", `registrationId < 'Dev'`, false, false},
	{"ok/string comparison is case-sensitive", `registrationId = 'DEV-1'`, false, false},
	{"ok/path lookup is case-sensitive", `RegistrationId = 'dev-1'`, false, false},
	{"ok/number equal", `initialTwin.tags.n = 3`, false, true},
	{"ok/number equal decimal", `initialTwin.tags.n = 3.0`, false, true},
	{"ok/number greater", `initialTwin.tags.n > 2`, false, true},
	{"ok/number greater or equal", `initialTwin.tags.n >= 3`, false, true},
	{"ok/number less false", `initialTwin.tags.n < 3`, false, false},
	{"ok/number less or equal", `initialTwin.tags.n <= 3`, false, true},
	{"ok/numbers compare numerically", `initialTwin.tags.n < 10`, false, true},
	{"ok/number not equal", `initialTwin.tags.n != 4`, false, true},
	{"ok/bool equal", `capabilities.iotEdge = true`, false, true},
	{"ok/bool not equal", `capabilities.iotEdge != false`, false, true},
	{"ok/bool has no order", `capabilities.iotEdge > false`, false, false},
	{"ok/bare bool path", `capabilities.iotEdge`, false, true},
	{"ok/bare string path is not true", `registrationId`, false, false},
	{"ok/type mismatch equal", `initialTwin.tags.n = '3'`, false, false},
	{"ok/type mismatch not equal", `initialTwin.tags.n != '3'`, false, false},
	{"ok/type mismatch bool string", `capabilities.iotEdge = 'true'`, false, false},
	{"ok/not of type mismatch", `NOT initialTwin.tags.n = '3'`, false, true},
	{"ok/undefined equal", `initialTwin.tags.missing = 1`, false, false},
	{"ok/undefined not equal", `initialTwin.tags.missing != 1`, false, false},
	{"ok/not of undefined comparison", `NOT (initialTwin.tags.missing = 1)`, false, false},
	{"ok/undefined through non-object", `registrationId.x = 1`, false, false},
	{"ok/undefined constant", `undefined = undefined`, false, false},
	{"ok/undefined or true", `initialTwin.tags.missing = 1 OR true`, false, true},
	{"ok/undefined and false", `NOT (initialTwin.tags.missing = 1 AND false)`, false, true},
	{"ok/undefined and true", `NOT (initialTwin.tags.missing = 1 AND true)`, false, false},
	{"ok/undefined or false", `NOT (initialTwin.tags.missing = 1 OR false)`, false, false},
	{"ok/is defined", `IS_DEFINED(initialTwin.tags.site)`, false, true},
	{"ok/is defined missing", `IS_DEFINED(initialTwin.tags.nope)`, false, false},
	{"ok/not is defined", `NOT IS_DEFINED(initialTwin.tags.nope)`, false, true},
	{"ok/is object", `IS_OBJECT(initialTwin.properties.desired)`, false, true},
	{"ok/is number", `IS_NUMBER(initialTwin.tags.n) AND NOT IS_STRING(initialTwin.tags.n)`, false, true},
	{"ok/is string", `IS_STRING(registrationId)`, false, true},
	{"ok/is bool", `IS_BOOL(capabilities.iotEdge)`, false, true},
	{"ok/in", `initialTwin.tags.site IN ['lab-1', 'lab-2']`, false, true},
	{"ok/in parentheses", `initialTwin.tags.site IN ('lab-2', 'lab-1')`, false, true},
	{"ok/in absent", `initialTwin.tags.site IN ['lab-2']`, false, false},
	{"ok/nin", `initialTwin.tags.site NIN ['lab-1']`, false, false},
	{"ok/nin absent", `initialTwin.tags.site NIN ['lab-2']`, false, true},
	{"ok/not in", `initialTwin.tags.site NOT IN ['lab-2']`, false, true},
	{"ok/in numbers", `initialTwin.tags.n IN [1, 2, 3]`, false, true},
	{"ok/in needs same type", `initialTwin.tags.n IN ['3']`, false, false},
	{"ok/nin other type", `initialTwin.tags.n NIN ['3']`, false, true},
	{"ok/in undefined", `initialTwin.tags.missing IN ['a']`, false, false},
	{"ok/nin undefined", `initialTwin.tags.missing NIN ['a']`, false, false},
	{"ok/in empty", `initialTwin.tags.n IN []`, false, false},
	{"ok/plus", `initialTwin.tags.n + 1 = 4`, false, true},
	{"ok/minus and times", `initialTwin.tags.n * 2 - 1 = 5`, false, true},
	{"ok/modulo", `initialTwin.tags.n % 2 = 1`, false, true},
	{"ok/divide", `initialTwin.tags.n / 2 = 1.5`, false, true},
	{"ok/divide by zero", `initialTwin.tags.n / 0 > 0`, false, false},
	{"ok/divide by zero not", `NOT (initialTwin.tags.n / 0 > 0)`, false, false},
	{"ok/modulo by zero", `NOT (initialTwin.tags.n % 0 > 0)`, false, false},
	{"ok/times binds tighter", `1 + 2 * 3 = 7`, false, true},
	{"ok/parentheses group", `(1 + 2) * 3 = 9`, false, true},
	{"ok/minus is left associative", `10 - 2 - 3 = 5`, false, true},
	{"ok/divide is left associative", `12 / 2 / 3 = 2`, false, true},
	{"ok/unary minus", `-initialTwin.tags.n = -3`, false, true},
	{"ok/arithmetic on string", `NOT ('a' + 1 = 1)`, false, false},
	{"ok/arithmetic on undefined", `initialTwin.tags.missing + 1 > 0`, false, false},
	{"ok/and binds tighter than or", `true OR false AND false`, false, true},
	{"ok/parentheses override", `(true OR false) AND false`, false, false},
	{"ok/not binds tighter than and", `NOT false AND false`, false, false},
	{"ok/not binds tighter than or", `NOT true OR true`, false, true},
	{"ok/comparison binds tighter than not", `NOT initialTwin.tags.n = 4`, false, true},
	{"ok/not of non-boolean", `NOT registrationId`, false, false},
	{"ok/startswith", `STARTSWITH(registrationId, 'dev-')`, false, true},
	{"ok/starts_with alias", `starts_with(registrationId, 'x')`, false, false},
	{"ok/endswith", `ENDSWITH(registrationId, '-1')`, false, true},
	{"ok/ends_with alias", `ENDS_WITH(registrationId, 'dev')`, false, false},
	{"ok/contains", `CONTAINS(initialTwin.tags.site, 'b-')`, false, true},
	{"ok/contains is case-sensitive", `CONTAINS(initialTwin.tags.site, 'LAB')`, false, false},
	{"ok/contains non-string", `NOT CONTAINS(initialTwin.tags.n, '3')`, false, true},
	{"ok/startswith undefined", `NOT STARTSWITH(initialTwin.tags.missing, 'a')`, false, false},
	{"ok/null equal", `tags.nil = null`, true, true},
	{"ok/null not equal", `tags.nil != null`, true, false},
	{"ok/null versus value", `tags.x != null`, true, false},
	{"ok/null constant", `null = null`, true, true},
	{"ok/is null", `IS_NULL(tags.nil) AND IS_DEFINED(tags.nil)`, true, true},
	{"ok/is null of missing", `IS_NULL(tags.missing)`, true, false},
	{"ok/path to path", `properties.desired.$version = properties.reported.lastDesiredVersion`, true, true},
	{"ok/path to path ordering", `properties.desired.$version < properties.reported.lastDesiredVersion`, true, false},
	{"ok/bracket segment", `configurations.[[base-deploy]].status = 'Applied'`, true, true},
	{"ok/dollar constant", `moduleId = '$edgeAgent'`, true, true},
	{"ok/doubled quote", `tags.name = 'operator''s'`, true, true},
	{"ok/escaped quote", `tags.name = 'operator\'s'`, true, true},
	{"ok/double quoted", `tags.name = "operator's"`, true, true},
	{"ok/hex", `tags.hex = 0x1F`, true, true},
	{"ok/negative exponent", `tags.big = -1.5e3 AND tags.big = -1500`, true, true},
	{"ok/unicode escape", `tags.caf = 'caf\u00e9'`, true, true},
	{"ok/surrogate pair escape", `tags.smile = '\uD83D\uDE00'`, true, true},
	{"ok/case-sensitive key", `tags.Case = 'upper' AND NOT IS_DEFINED(tags.case)`, true, true},
	{"ok/array equal", `tags.list = ['a', 'b']`, true, true},
	{"ok/array order matters", `tags.list = ['b', 'a']`, true, false},
	{"ok/array not equal", `tags.list != ['a']`, true, true},
	{"ok/array no ordering", `tags.list < ['b']`, true, false},
	{"ok/is array", `IS_ARRAY(tags.list)`, true, true},
	{"ok/object equal", `configurations.[[base-deploy]] = configurations.[[base-deploy]]`, true, true},
	{"ok/reported arithmetic", `properties.reported.temp + 1 > 5`, true, true},
	{"ok/system metric targeted", `capabilities.iotEdge = true and tags.environment='test'`, true, true},
	{"ok/system metric applied", `moduleId = '$edgeAgent' and configurations.[[base-deploy]].status = 'Applied'`, true, true},
	{"ok/system metric reported success", `moduleId = '$edgeAgent' and configurations.[[base-deploy]].status = 'Applied' and properties.desired.$version = properties.reported.lastDesiredVersion and properties.reported.lastDesiredStatus.code = 200`, true, true},
	{"ok/system metric count", `tags.x = 1`, true, true},
}

func TestMatch(t *testing.T) {
	for mode, useNumber := range map[string]bool{"json.Number": true, "float64": false} {
		docs := map[bool]map[string]any{
			false: decode(t, enrollmentJSON, useNumber),
			true:  decode(t, twinJSON, useNumber),
		}
		t.Run(mode, func(t *testing.T) {
			for _, tc := range matchCases {
				t.Run(tc.name, func(t *testing.T) {
					c, err := ParseCondition(tc.cond)
					if err != nil {
						t.Fatalf("ParseCondition(%q): %v", tc.cond, err)
					}
					if got := c.Match(docs[tc.twin]); got != tc.want {
						t.Errorf("ParseCondition(%q).Match = %v, want %v", tc.cond, got, tc.want)
					}
				})
			}
		})
	}
}

func TestMatchNumberTypes(t *testing.T) {
	for _, v := range []any{json.Number("3"), 3.0, 3, int64(3), int32(3), uint8(3), float32(3)} {
		doc := map[string]any{"v": v}
		for cond, want := range map[string]bool{`v = 3`: true, `v < 4`: true, `v > 3`: false, `v + 1 = 4`: true, `IS_NUMBER(v)`: true} {
			c, err := ParseCondition(cond)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Match(doc); got != want {
				t.Errorf("%q on %T: got %v, want %v", cond, v, got, want)
			}
		}
	}
}

func TestMatchOddDocuments(t *testing.T) {
	c, err := ParseCondition(`v = 1 OR v != 1 OR IS_NUMBER(v) OR v = v`)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []map[string]any{nil, {"v": struct{}{}}, {"v": json.Number("x")}, {"v": map[string]string{}}} {
		if c.Match(doc) {
			t.Errorf("Match(%v) = true, want false", doc)
		}
	}
	var none *Condition
	if !none.Match(nil) || none.String() != "*" || none.Paths() != nil {
		t.Error("nil *Condition should match everything and render as *")
	}
}

func TestConditionPaths(t *testing.T) {
	c, err := ParseCondition(`a = 1 AND STARTSWITH(b.c, 'x') OR a > d.[[e-f]] OR -g IN [1]`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Path{{"a"}, {"b", "c"}, {"d", "e-f"}, {"g"}}
	if diff := cmp.Diff(want, c.Paths()); diff != "" {
		t.Errorf("Paths() mismatch (-want +got):\n%s", diff)
	}
	all, _ := ParseCondition("*")
	if got := all.Paths(); got != nil {
		t.Errorf("Paths() of * = %v, want nil", got)
	}
}

type queryCase struct {
	name string
	in   string
	want Query
	str  string // canonical String()
}

func cond(t testing.TB, s string) *Condition {
	t.Helper()
	c, err := ParseCondition(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func goodQueries(t testing.TB) []queryCase {
	groupKey := Path{"properties", "reported", "status"}
	return []queryCase{
		{"ok/system metric targeted", systemMetricQueries[0],
			Query{Fields: []Field{{Path: Path{"deviceId"}}}, From: "devices", Where: cond(t, `capabilities.iotEdge = true AND tags.environment = 'test'`)},
			`SELECT deviceId FROM devices WHERE capabilities.iotEdge = true AND tags.environment = 'test'`},
		{"ok/system metric applied", systemMetricQueries[1],
			Query{Fields: []Field{{Path: Path{"deviceId"}}}, From: "devices.modules", Where: cond(t, `moduleId = '$edgeAgent' AND configurations.[[base-deploy]].status = 'Applied'`)},
			`SELECT deviceId FROM devices.modules WHERE moduleId = '$edgeAgent' AND configurations.[[base-deploy]].status = 'Applied'`},
		{"ok/system metric reported success", systemMetricQueries[2],
			Query{Fields: []Field{{Path: Path{"deviceId"}}}, From: "devices.modules", Where: cond(t, `moduleId = '$edgeAgent' AND configurations.[[base-deploy]].status = 'Applied' AND properties.desired.$version = properties.reported.lastDesiredVersion AND properties.reported.lastDesiredStatus.code = 200`)},
			`SELECT deviceId FROM devices.modules WHERE moduleId = '$edgeAgent' AND configurations.[[base-deploy]].status = 'Applied' AND properties.desired.$version = properties.reported.lastDesiredVersion AND properties.reported.lastDesiredStatus.code = 200`},
		{"ok/system metric count", systemMetricQueries[3],
			Query{Count: "_count", From: "devices", Where: cond(t, `tags.x = 1`)},
			`SELECT COUNT() AS _count FROM devices WHERE tags.x = 1`},
		{"ok/enrollment filter", `SELECT * FROM enrollments WHERE provisioningStatus = 'enabled' AND initialTwin.tags.site = 'lab'`,
			Query{SelectAll: true, From: "enrollments", Where: cond(t, `provisioningStatus = 'enabled' AND initialTwin.tags.site = 'lab'`)},
			`SELECT * FROM enrollments WHERE provisioningStatus = 'enabled' AND initialTwin.tags.site = 'lab'`},
		{"ok/select all", `select * from enrollmentGroups`, Query{SelectAll: true, From: "enrollmentGroups"}, `SELECT * FROM enrollmentGroups`},
		{"ok/top", `Select Top 10 * From devices`, Query{Top: 10, SelectAll: true, From: "devices"}, `SELECT TOP 10 * FROM devices`},
		{"ok/top hex", `SELECT TOP 0x10 deviceId FROM devices`, Query{Top: 16, Fields: []Field{{Path: Path{"deviceId"}}}, From: "devices"}, `SELECT TOP 16 deviceId FROM devices`},
		{"ok/fields with aliases", `SELECT deviceId AS id, tags.site, configurations.[[base-deploy]].status AS s FROM devices`,
			Query{Fields: []Field{{Path{"deviceId"}, "id"}, {Path{"tags", "site"}, ""}, {Path{"configurations", "base-deploy", "status"}, "s"}}, From: "devices"},
			`SELECT deviceId AS id, tags.site, configurations.[[base-deploy]].status AS s FROM devices`},
		{"ok/group by", `SELECT properties.reported.status AS status, COUNT() AS n FROM devices GROUP BY properties.reported.status`,
			Query{Fields: []Field{{groupKey, "status"}}, Count: "n", From: "devices", GroupBy: &groupKey},
			`SELECT properties.reported.status AS status, COUNT() AS n FROM devices GROUP BY properties.reported.status`},
		{"ok/count first", `SELECT count() as n, tags.site FROM devices WHERE tags.x > 1 GROUP BY tags.site`,
			Query{Fields: []Field{{Path{"tags", "site"}, ""}}, Count: "n", From: "devices", Where: cond(t, `tags.x > 1`), GroupBy: &Path{"tags", "site"}},
			`SELECT tags.site, COUNT() AS n FROM devices WHERE tags.x > 1 GROUP BY tags.site`},
		{"ok/where with everything", `SELECT * FROM devices WHERE (tags.a IN ['x','y'] OR NOT IS_DEFINED(tags.b)) AND tags.n * 2 >= -0x1`,
			Query{SelectAll: true, From: "devices", Where: cond(t, `(tags.a IN ['x', 'y'] OR NOT IS_DEFINED(tags.b)) AND tags.n * 2 >= -1`)},
			`SELECT * FROM devices WHERE (tags.a IN ['x', 'y'] OR NOT IS_DEFINED(tags.b)) AND tags.n * 2 >= -1`},
	}
}

// conditionByString compares conditions by their canonical form.
var conditionByString = cmp.Comparer(func(a, b *Condition) bool {
	return (a == nil) == (b == nil) && a.String() == b.String()
})

func TestParse(t *testing.T) {
	for _, tc := range goodQueries(t) {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(&tc.want, q, conditionByString); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tc.in, diff)
			}
			if got := q.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
		})
	}
}

var badQueries = []errorCase{
	{"syntax/empty", ``, false, "expected SELECT, found end of input at offset 0"},
	{"syntax/not a select", `DELETE FROM devices`, false, "expected SELECT, found 'DELETE' at offset 0"},
	{"syntax/no select list", `SELECT FROM devices`, false, "expected a path, found 'FROM' at offset 7"},
	{"syntax/missing from", `SELECT * devices`, false, "expected FROM, found 'devices' at offset 9"},
	{"syntax/missing collection", `SELECT * FROM`, false, "expected a collection name, found end of input at offset 13"},
	{"syntax/bracketed collection", `SELECT * FROM devices.[[x]]`, false, "expected a collection name, found 'devices.[[x]]' at offset 14"},
	{"syntax/star and fields", `SELECT *, deviceId FROM devices`, false, "expected FROM, found ',' at offset 8"},
	{"syntax/top zero", `SELECT TOP 0 * FROM devices`, false, "expected a whole number from 1 after TOP, found '0' at offset 11"},
	{"syntax/top fraction", `SELECT TOP 1.5 * FROM devices`, false, "expected a whole number from 1 after TOP, found '1.5' at offset 11"},
	{"syntax/top missing", `SELECT TOP * FROM devices`, false, "expected a whole number from 1 after TOP, found '*' at offset 11"},
	{"syntax/count without alias", `SELECT COUNT() FROM devices`, false, "expected AS, found 'FROM' at offset 15"},
	{"syntax/count with argument", `SELECT COUNT(x) AS n FROM devices`, false, "expected ')' after COUNT(, found 'x' at offset 13"},
	{"syntax/two counts", `SELECT COUNT() AS a, COUNT() AS b FROM devices`, false, "more than one COUNT() at offset 21"},
	{"syntax/keyword alias", `SELECT deviceId AS from FROM devices`, false, "expected an alias, found 'from' at offset 19"},
	{"syntax/empty where", `SELECT * FROM devices WHERE`, false, "unexpected end of input at offset 27"},
	{"syntax/where star", `SELECT * FROM devices WHERE *`, false, "unexpected '*' at offset 28"},
	{"syntax/group without by", `SELECT * FROM devices GROUP deviceId`, false, "expected BY, found 'deviceId' at offset 28"},
	{"syntax/trailing tokens", `SELECT * FROM devices x`, false, "unexpected 'x' at offset 22"},
	{"syntax/unclosed string in where", `SELECT * FROM devices WHERE tags.a = 'x`, false, "unterminated string at offset 37"},
	{"syntax/unexpected paren in where", `SELECT * FROM devices WHERE (a = 1))`, false, "unexpected ')' at offset 35"},
	{"unsupported/function in where", `SELECT * FROM devices WHERE ST_DISTANCE(a, b) < 1`, true, "unsupported function ST_DISTANCE at offset 28"},
	{"unsupported/aggregate in select", `SELECT AVG(tags.n) AS a FROM devices`, true, "unsupported function AVG in SELECT at offset 7"},
	{"unsupported/order by", `SELECT * FROM devices ORDER BY deviceId`, true, "unsupported ORDER BY at offset 22"},
	{"syntax/too long", `SELECT * FROM devices WHERE a = '` + strings.Repeat("x", MaxInputLen) + `'`, false, "input longer than 65536 bytes at offset 65536"},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range badQueries {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error %q", tc.in, q, tc.msg)
			}
			checkError(t, tc, err)
		})
	}
}

// TestRoundTrip checks that every good input renders to a form that parses
// back to the same rendering.
func TestRoundTrip(t *testing.T) {
	var conds []string
	for _, tc := range goodConditions {
		conds = append(conds, tc.in)
	}
	for _, tc := range matchCases {
		conds = append(conds, tc.cond)
	}
	for _, tc := range goodQueries(t) {
		conds = append(conds, tc.want.Where.String())
		checkQueryRoundTrip(t, tc.in)
	}
	for _, in := range conds {
		checkConditionRoundTrip(t, in)
	}
}

func checkConditionRoundTrip(t *testing.T, in string) {
	t.Helper()
	c, err := ParseCondition(in)
	if err != nil {
		t.Fatalf("ParseCondition(%q): %v", in, err)
	}
	s := c.String()
	c2, err := ParseCondition(s)
	if err != nil {
		t.Fatalf("ParseCondition(%q) (rendered from %q): %v", s, in, err)
	}
	if s2 := c2.String(); s2 != s {
		t.Errorf("round trip of %q: %q then %q", in, s, s2)
	}
}

func checkQueryRoundTrip(t *testing.T, in string) {
	t.Helper()
	q, err := Parse(in)
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	q2, err := Parse(q.String())
	if err != nil {
		t.Fatalf("Parse(%q) (rendered from %q): %v", q.String(), in, err)
	}
	if diff := cmp.Diff(q, q2, conditionByString); diff != "" {
		t.Errorf("round trip of %q (-first +second):\n%s", in, diff)
	}
}
