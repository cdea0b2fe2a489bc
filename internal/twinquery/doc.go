// Package twinquery parses and evaluates the subset of the Azure IoT Hub query
// language that Usher needs. The same parser serves three callers: filtering
// Device Provisioning Service enrollments, the hub's device and module twin
// query endpoint, and deployment target conditions.
//
// The reference for syntax and semantics is the "Azure IoT Hub query
// language" as documented by Microsoft. This package implements:
//
//	SELECT [TOP n] ( * | <item> {, <item>} )
//	FROM <collection>
//	[WHERE <condition>]
//	[GROUP BY <path>]
//
//	<item> = <path> [AS alias] | COUNT() AS alias
//
// Keywords and function names are case-insensitive. A collection is a dotted
// identifier (devices, devices.modules, enrollments); the caller decides which
// collections exist.
//
// # Paths
//
// A path is a dotted list of segments, such as tags.site or
// properties.desired.$version. A plain segment is made of ASCII letters,
// digits, '_' and '$' (the first segment may not start with a digit). Any
// other segment is written between double brackets, which take the text
// literally: configurations.[[base-deploy]].status. Segments are matched
// against JSON object keys case-sensitively; paths only descend into objects,
// never into arrays.
//
// # Conditions
//
// Conditions combine comparisons (=, !=, <>, <, >, <=, >=) between paths,
// constants and arithmetic (+ - * / %) with AND, OR, NOT and parentheses.
// Precedence from loose to tight is OR, AND, NOT, comparison, addition and
// subtraction, multiplication, division and modulo, unary minus.
// x IN [c1, c2] and x NIN [c1, c2] (also NOT IN, and parentheses instead of
// brackets) test membership in a list of constants. Constants are strings in
// single or double quotes (with the escapes \' \" \\ \/ \b \f \n \r \t and
// \uXXXX, and a doubled single quote inside single quotes), numbers (decimal
// with optional fraction and exponent, or hexadecimal), true, false, null,
// undefined, and flat arrays of constants:
//
//	'lab-1'  "lab-1"  'operator''s'  'caf\u00e9'  42  -1.5e3  0x1F  null  ['a', 'b']
//
// The functions are IS_DEFINED, IS_NULL, IS_BOOL, IS_NUMBER, IS_STRING,
// IS_OBJECT, IS_ARRAY, STARTSWITH (or STARTS_WITH), ENDSWITH (or ENDS_WITH)
// and CONTAINS. IS_DEFINED is true for a path that exists, even with a null
// value; the other IS_ functions test the type of their argument.
// ParseCondition also accepts a bare "*", which matches every document.
//
// # Semantics
//
// Evaluation follows the Azure rules for undefined values. A path that is
// absent is undefined, and any comparison or arithmetic involving undefined
// is undefined, so both tags.x = 1 and tags.x != 1 fail when tags.x is
// missing; use IS_DEFINED to test for presence. Comparing values of different
// types (a string with a number, null with a string) is false for every
// operator, including !=; use IS_NULL rather than != null. Numbers compare
// numerically as IEEE 754 doubles whatever their Go type; strings compare
// bytewise and case-sensitively; booleans, null, arrays and objects support
// only = and !=, arrays and objects comparing deeply. AND, OR and NOT use
// three-valued logic: AND is false if either side is false, OR is true if
// either side is true, and otherwise a non-boolean side makes the result
// undefined. A document matches only when the condition is exactly true.
// Division or modulo by zero is undefined. STARTSWITH, ENDSWITH and CONTAINS
// are undefined when an argument is undefined and false when one is not a
// string; the IS_ functions are always true or false.
//
// # Errors and limits
//
// Parse errors are *SyntaxError for malformed text and *UnsupportedError for
// Azure syntax this package does not implement (an unknown function, nested
// arrays, ORDER BY). Both carry a byte offset and a short message that names
// the offending token and is safe to return to API users. Inputs are limited
// to MaxInputLen bytes, MaxDepth levels of nesting and MaxListLen items per
// list. String renders a canonical form that re-parses to an equivalent query
// or condition; it can be a little longer than the text it came from (1e5
// renders as 100000), so the rendering of input close to MaxInputLen may
// exceed the limit. The package does no I/O, keeps no state and never panics.
package twinquery

// Limits applied to untrusted query text.
const (
	MaxInputLen = 64 << 10 // longest accepted query or condition, in bytes
	MaxDepth    = 64       // deepest nesting of parentheses, NOT, unary minus and calls
	MaxListLen  = 1000     // most items in an IN list or array constant
)
