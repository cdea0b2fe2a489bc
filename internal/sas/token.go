package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// prefix starts every token. It is case-sensitive and followed by exactly one
// space in every client.
const prefix = "SharedAccessSignature "

// maxTokenLen bounds the input Parse accepts, before any trimming.
const maxTokenLen = 4096

// Token is a parsed "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]".
type Token struct {
	RawResource string    // sr exactly as sent (signed over this)
	RawExpiry   string    // se exactly as sent (signed over this)
	Signature   []byte    // sig, percent-decoded then base64-decoded
	Expiry      time.Time // se read as Unix seconds
	KeyName     string    // skn, percent-decoded, "" when absent
}

// Parse parses a token as sent in an Authorization header, an MQTT password
// or an AMQP SASL PLAIN password.
//
// The value must start with "SharedAccessSignature " (case-sensitive, one
// space); spaces and tabs around the whole value are ignored. The rest is a
// set of '&'-separated name=value fields in any order, each split on its first
// '='. sr, sig and se are required, skn is optional, unknown fields are
// ignored, empty fields (such as a trailing '&') are skipped, and a repeated
// sr, sig, se or skn is rejected. se must be a non-negative integer that fits
// in 64 bits; one past the year 9999 counts as the end of 9999. sig is
// percent-decoded without turning '+' into a space (so a '+' that was not
// escaped still counts as '+'), then base64-decoded, padded or not. Inputs
// over 4096 bytes are rejected.
//
// Errors are fault Unauthenticated with a message naming the offending part.
func Parse(s string) (Token, error) {
	if len(s) > maxTokenLen {
		return Token{}, unauth("SAS token is longer than %d bytes", maxTokenLen)
	}
	s = strings.Trim(s, " \t")
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return Token{}, unauth("SAS token must start with %q", prefix)
	}
	if strings.HasPrefix(rest, " ") {
		return Token{}, unauth("SAS token must have exactly one space after %q", strings.TrimSpace(prefix))
	}
	f, err := splitFields(rest)
	if err != nil {
		return Token{}, err
	}
	return f.token()
}

// fields holds the raw values of the fields Parse knows.
type fields struct {
	sr, sig, se, skn *string
}

// splitFields splits the part after the prefix into the known fields.
func splitFields(rest string) (fields, error) {
	var f fields
	for part := range strings.SplitSeq(rest, "&") {
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return fields{}, unauth("SAS token has a field without '='")
		}
		slot := f.slot(name)
		if slot == nil {
			continue
		}
		if *slot != nil {
			return fields{}, unauth("SAS token has more than one %s", name)
		}
		*slot = &value
	}
	return f, nil
}

// slot returns where the value of the named field goes, or nil for a name
// Parse ignores.
func (f *fields) slot(name string) **string {
	switch name {
	case "sr":
		return &f.sr
	case "sig":
		return &f.sig
	case "se":
		return &f.se
	case "skn":
		return &f.skn
	}
	return nil
}

// token checks the fields and decodes them into a Token.
func (f fields) token() (Token, error) {
	for _, r := range []struct {
		name string
		v    *string
	}{{"sr", f.sr}, {"sig", f.sig}, {"se", f.se}} {
		if r.v == nil {
			return Token{}, unauth("SAS token has no %s", r.name)
		}
		if *r.v == "" {
			return Token{}, unauth("SAS token has an empty %s", r.name)
		}
	}
	t := Token{RawResource: *f.sr, RawExpiry: *f.se}
	if _, err := t.Resource(); err != nil {
		return Token{}, err
	}
	var err error
	if t.Expiry, err = parseExpiry(*f.se); err != nil {
		return Token{}, err
	}
	if t.Signature, err = decodeSig(*f.sig); err != nil {
		return Token{}, err
	}
	if f.skn != nil {
		if t.KeyName, err = url.PathUnescape(*f.skn); err != nil {
			return Token{}, unauth("SAS token skn is not valid percent-encoding")
		}
	}
	return t, nil
}

// maxExpiry is the latest Expiry Parse gives, the last second of year 9999
// UTC. A larger se (any up to 2^63-1 is a valid whole number) expires then:
// time.Time cannot compare instants near its own limit (time.Unix(2^63-1, 0)
// is before the year 2000), and a token valid for eight thousand years is
// valid for as long as anyone will check it.
const maxExpiry = 253402300799

// parseExpiry reads se: decimal digits only, as Unix seconds, capped at
// maxExpiry.
func parseExpiry(se string) (time.Time, error) {
	bad := unauth("SAS token se is not a whole number of seconds")
	for i := 0; i < len(se); i++ {
		if se[i] < '0' || se[i] > '9' {
			return time.Time{}, bad
		}
	}
	n, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return time.Time{}, bad
	}
	return time.Unix(min(n, maxExpiry), 0), nil
}

// decodeSig percent-decodes sig ('+' stays '+') and base64-decodes it.
func decodeSig(sig string) ([]byte, error) {
	s, err := url.PathUnescape(sig)
	if err != nil {
		return nil, unauth("SAS token sig is not valid percent-encoding")
	}
	b, err := decodeBase64(s)
	if err != nil || len(b) == 0 {
		return nil, unauth("SAS token sig is not valid base64")
	}
	return b, nil
}

// decodeBase64 decodes standard base64 with or without its '=' padding.
// Line breaks, which the standard decoder would skip, are rejected.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, base64.CorruptInputError(strings.IndexAny(s, "\r\n"))
	}
	if len(s)%4 == 0 {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// Resource returns sr percent-decoded the way a URL path is: "%2f" and "%2F"
// both become '/', and '+' stays '+'. Compare the result with [AudienceMatch].
func (t Token) Resource() (string, error) {
	r, err := url.PathUnescape(t.RawResource)
	if err != nil {
		return "", unauth("SAS token sr is not valid percent-encoding")
	}
	return r, nil
}

// Verify checks that t was signed with key and has not expired.
//
// The HMAC-SHA256 is computed over RawResource + "\n" + RawExpiry, the
// strings exactly as the client sent them, and compared with Signature in
// constant time. An empty key never matches. The token counts as expired when
// Expiry is before now - skew (a negative skew counts as zero). Errors are
// fault Unauthenticated: "signature does not match" or "token expired"; the
// signature is checked first, so an expired token with a wrong signature
// reports the signature.
func (t Token) Verify(key []byte, now time.Time, skew time.Duration) error {
	if !t.signedWith(key) {
		return unauth("signature does not match")
	}
	return t.checkExpiry(now, skew)
}

// VerifyAny is Verify with several base64 keys, for example an enrollment's
// primary then secondary key. It returns nil when one of them signed t and t
// has not expired. Keys that are not base64 (padded or not) or are empty are
// skipped, so with no usable key the answer is "signature does not match".
func (t Token) VerifyAny(now time.Time, skew time.Duration, keys ...string) error {
	for _, k := range keys {
		key, err := decodeBase64(k)
		if err == nil && t.signedWith(key) {
			return t.checkExpiry(now, skew)
		}
	}
	return unauth("signature does not match")
}

// signedWith reports whether Signature is the HMAC of t under key.
func (t Token) signedWith(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	return hmac.Equal(mac(key, t.RawResource, t.RawExpiry), t.Signature)
}

// checkExpiry fails when Expiry is before now - skew.
func (t Token) checkExpiry(now time.Time, skew time.Duration) error {
	skew = max(skew, 0)
	if t.Expiry.Before(now.Add(-skew)) {
		return unauth("token expired")
	}
	return nil
}

// mac returns HMAC-SHA256(key, sr + "\n" + se).
func mac(key []byte, sr, se string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sr))
	h.Write([]byte{'\n'})
	h.Write([]byte(se))
	return h.Sum(nil)
}

// Sign builds a token:
//
//	SharedAccessSignature sr=<resource>&sig=<signature>&se=<unix seconds>[&skn=<keyName>]
//
// resource is placed into the token and signed verbatim: the caller picks its
// encoding (raw like Node, or percent-encoded like C, C# and Python). The
// signature and keyName are percent-encoded with uppercase hex, leaving only
// A-Z a-z 0-9 - . _ ~ as they are; skn is left out when keyName is "".
func Sign(resource, keyName string, key []byte, expiry time.Time) string {
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := base64.StdEncoding.EncodeToString(mac(key, resource, se))
	var b strings.Builder
	b.WriteString(prefix + "sr=" + resource + "&sig=" + escape(sig) + "&se=" + se)
	if keyName != "" {
		b.WriteString("&skn=" + escape(keyName))
	}
	return b.String()
}

// SignKey is [Sign] with the key given in base64 (padded or not). A key that
// is not base64 or is empty is a fault Invalid.
func SignKey(resource, keyName, base64Key string, expiry time.Time) (string, error) {
	key, err := decodeKey(base64Key, "key")
	if err != nil {
		return "", err
	}
	return Sign(resource, keyName, key, expiry), nil
}

// escape percent-encodes every byte except the RFC 3986 unreserved ones.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// unreserved reports whether c may appear in a URL unescaped.
func unreserved(c byte) bool {
	switch {
	case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~'
}

// unauth returns a fault Unauthenticated.
func unauth(format string, args ...any) error {
	return fault.New(fault.Unauthenticated, format, args...)
}
