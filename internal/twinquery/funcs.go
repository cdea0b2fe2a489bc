package twinquery

import "strings"

// funcSpec describes a built-in function. name is its canonical spelling.
type funcSpec struct {
	name  string
	arity int
	eval  func(args []value) value
}

// lookupFunc finds a built-in function by case-insensitive name.
func lookupFunc(name string) (funcSpec, bool) {
	switch strings.ToUpper(name) {
	case "IS_DEFINED":
		return typeTest("IS_DEFINED", func(k kind) bool { return k != kUndef }), true
	case "IS_NULL":
		return typeTest("IS_NULL", isKind(kNull)), true
	case "IS_BOOL":
		return typeTest("IS_BOOL", isKind(kBool)), true
	case "IS_NUMBER":
		return typeTest("IS_NUMBER", isKind(kNum)), true
	case "IS_STRING":
		return typeTest("IS_STRING", isKind(kStr)), true
	case "IS_OBJECT":
		return typeTest("IS_OBJECT", isKind(kObj)), true
	case "IS_ARRAY":
		return typeTest("IS_ARRAY", isKind(kArr)), true
	case "STARTSWITH", "STARTS_WITH":
		return stringTest("STARTSWITH", strings.HasPrefix), true
	case "ENDSWITH", "ENDS_WITH":
		return stringTest("ENDSWITH", strings.HasSuffix), true
	case "CONTAINS":
		return stringTest("CONTAINS", strings.Contains), true
	}
	return funcSpec{}, false
}

func isKind(want kind) func(kind) bool {
	return func(k kind) bool { return k == want }
}

// typeTest is a one-argument function that is always true or false, even
// for an undefined argument.
func typeTest(name string, test func(kind) bool) funcSpec {
	return funcSpec{name: name, arity: 1, eval: func(args []value) value {
		return boolV(test(args[0].k))
	}}
}

// stringTest is a two-argument string predicate. It is undefined when an
// argument is undefined and false when one is not a string.
func stringTest(name string, test func(s, sub string) bool) funcSpec {
	return funcSpec{name: name, arity: 2, eval: func(args []value) value {
		s, sub := args[0], args[1]
		switch {
		case s.k == kUndef || sub.k == kUndef:
			return value{}
		case s.k != kStr || sub.k != kStr:
			return boolV(false)
		}
		return boolV(test(s.s, sub.s))
	}}
}
