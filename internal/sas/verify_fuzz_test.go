package sas

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// otherKeyB64 is a second key for the fuzz targets: a token that verifies
// under one of two keys must have been signed with that one.
const otherKeyB64 = "c2Vjb25kYXJ5LWtleS1mb3ItZnV6emluZy0wMDAwMDA="

// refKey decodes a base64 key the way the package documents it (padded or
// not, no line breaks), independently of the package's own decoder; nil
// when it does not decode or is empty.
func refKey(k string) []byte {
	if strings.ContainsAny(k, "\r\n") {
		return nil
	}
	enc := base64.RawStdEncoding
	if len(k)%4 == 0 {
		enc = base64.StdEncoding
	}
	b, err := enc.Strict().DecodeString(k)
	if err != nil || len(b) == 0 {
		// Strict refuses non-zero trailing bits, which the package's decoder
		// accepts: fall back to the lenient form before giving up.
		if b, err = enc.DecodeString(k); err != nil || len(b) == 0 {
			return nil
		}
	}
	return b
}

// refSignedWith reports whether tok's signature is the HMAC of its raw sr
// and se under key, computed without the package.
func refSignedWith(tok Token, key []byte) bool {
	if len(key) == 0 {
		return false
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(tok.RawResource + "\n" + tok.RawExpiry))
	return bytes.Equal(h.Sum(nil), tok.Signature)
}

// refExpired reports whether a token whose se is the decimal se has expired
// at now with skew, in whole seconds as the protocol counts them.
func refExpired(se string, now time.Time, skew time.Duration) bool {
	n, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return true
	}
	return n < now.Unix()-int64(max(skew, 0)/time.Second)
}

// clampSeconds keeps fuzzed times where time.Time arithmetic is exact.
func clampSeconds(s, lo, hi int64) int64 { return min(max(s, lo), hi) }

// FuzzVerify checks VerifyAny and Verify against an independent HMAC and
// expiry computation: a token is accepted exactly when one of the keys
// signed its raw sr and se and it has not expired; every refusal is
// Unauthenticated.
func FuzzVerify(f *testing.F) {
	for _, c := range captured {
		f.Add(fillCaptured(c), vectorKeyB64, otherKeyB64, int64(1700000000), int64(60))
		f.Add(fillCaptured(c), otherKeyB64, strings.TrimRight(vectorKeyB64, "="), int64(1700003600), int64(0))
		f.Add(fillCaptured(c), otherKeyB64, "", int64(1700003601), int64(0))
	}
	f.Add(tokNode, vectorKeyB64, "", int64(1700000000), int64(0))
	f.Add(tokC, "", vectorKeyB64, int64(1700000001), int64(1))
	f.Add(tokCS, "!!!", vectorKeyB64+"\n", int64(1700000061), int64(60))
	f.Add("SharedAccessSignature sr=a&sig=AAAA&se=9223372036854775807", "AAAA", "", int64(1700000000), int64(0))
	// Signed tokens whose se is past what time.Time counts from year 1.
	for _, se := range []string{"9223372036854775807", "9223372036854775806", "9161236440054179008", "99999999999999"} {
		f.Add("SharedAccessSignature sr=a&sig="+refSigEscaped(vectorKey, "a", se)+"&se="+se, vectorKeyB64, "", int64(1700000000), int64(0))
	}
	f.Add("SharedAccessSignature sr=a&sig=AAAA&se=0", "AAAA", "", int64(0), int64(-5))
	f.Fuzz(func(t *testing.T, s, keyA, keyB string, nowSec, skewSec int64) {
		tok, err := Parse(s)
		if err != nil {
			return
		}
		now := time.Unix(clampSeconds(nowSec, 0, maxExpiry), 0)
		skew := time.Duration(clampSeconds(skewSec, -1<<20, 1<<20)) * time.Second
		signed := refSignedWith(tok, refKey(keyA)) || refSignedWith(tok, refKey(keyB))
		expired := refExpired(tok.RawExpiry, now, skew)

		err = tok.VerifyAny(now, skew, keyA, keyB)
		if err != nil && !fault.Is(err, fault.Unauthenticated) {
			t.Fatalf("VerifyAny error of kind %v: %v", fault.KindOf(err), err)
		}
		if got, want := err == nil, signed && !expired; got != want {
			t.Fatalf("VerifyAny(%q, now %d, skew %v) accepted %v, want %v (signed %v, expired %v): %v", s, now.Unix(), skew, got, want, signed, expired, err)
		}
		for _, k := range []string{keyA, keyB} {
			key := refKey(k)
			err := tok.Verify(key, now, skew)
			if got, want := err == nil, refSignedWith(tok, key) && !expired; got != want {
				t.Fatalf("Verify(%q, key %q) accepted %v, want %v: %v", s, k, got, want, err)
			}
		}
	})
}

// FuzzSignVerify signs arbitrary resources with arbitrary keys: what Sign
// produces parses back to the same fields, verifies with its key (until it
// expires) and with no other.
func FuzzSignVerify(f *testing.F) {
	for _, c := range captured {
		s := fillCaptured(c)
		sr := s[len(prefix+"sr="):strings.Index(s, "&")]
		f.Add(sr, "registration", vectorKey, int64(1700003600))
	}
	f.Add("0ne00000A0A/registrations/"+regID, "", []byte{0}, int64(0))
	f.Add("localhost/devices/d%2Fx", "iot hub owner+", bytes.Repeat([]byte{0xff}, 65), int64(1<<40))
	f.Fuzz(func(t *testing.T, resource, keyName string, key []byte, expirySec int64) {
		expiry := time.Unix(clampSeconds(expirySec, 0, maxExpiry-1), 0)
		s := Sign(resource, keyName, key, expiry)
		tok, err := Parse(s)
		plain := resource != "" && !strings.ContainsAny(resource, "&\t ") && len(s) <= maxTokenLen
		if _, perr := (Token{RawResource: resource}).Resource(); perr != nil {
			plain = false
		}
		if err != nil {
			if plain {
				t.Fatalf("Parse(Sign(%q, %q)) = %v", resource, keyName, err)
			}
			return
		}
		if !plain {
			return // sr swallowed or reshaped by the '&' or spaces it carried
		}
		if tok.RawResource != resource || tok.KeyName != keyName || !tok.Expiry.Equal(expiry) {
			t.Fatalf("Parse(Sign(%q, %q, %v)) = %+v", resource, keyName, expiry, tok)
		}
		if len(key) == 0 {
			if tok.Verify(key, expiry, 0) == nil {
				t.Fatal("a token verified with an empty key")
			}
			return
		}
		if err := tok.Verify(key, expiry, 0); err != nil {
			t.Fatalf("token does not verify with its key: %v", err)
		}
		if err := tok.VerifyAny(expiry, 0, base64.StdEncoding.EncodeToString(key)); err != nil {
			t.Fatalf("token does not verify with its base64 key: %v", err)
		}
		if tok.Verify(key, expiry.Add(time.Second), 0) == nil {
			t.Fatal("an expired token verified")
		}
		other := bytes.Clone(key)
		other[len(other)-1] ^= 1
		if tok.Verify(other, expiry, 0) == nil {
			t.Fatalf("token signed with %x verified with %x", key, other)
		}
	})
}

// FuzzAudienceMatch compares AudienceMatch with a segment-wise reading of
// its contract: after one trailing '/' is dropped from each side, the
// resource's segments are a prefix of the wanted ones, ASCII letters
// folded.
func FuzzAudienceMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"0ne00STUB01/registrations/cap-c-http-01", "0ne00STUB01/registrations/cap-c-http-01"},
		{"0NE00STUB01/Registrations/cap-c-http-01/", "0ne00STUB01/registrations/cap-c-http-01"},
		{"localhost", "localhost/devices/cap-mqtt-hub-dev"},
		{"localhost/dev", "localhost/devices/cap-mqtt-hub-dev"},
		{"127.0.0.1/devices/cap-c-hub-dev-01", "127.0.0.1/devices/cap-c-hub-dev-01/modules/m"},
		{"/", "/"}, {"", "x"}, {"a//", "a//b"}, {"ä", "Ä"},
	} {
		f.Add(s[0], s[1])
	}
	fold := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 32
			}
		}
		return string(b)
	}
	f.Fuzz(func(t *testing.T, resource, want string) {
		r := strings.Split(fold(strings.TrimSuffix(resource, "/")), "/")
		w := strings.Split(fold(strings.TrimSuffix(want, "/")), "/")
		expect := len(r) <= len(w) && strings.TrimSuffix(resource, "/") != "" && strings.TrimSuffix(want, "/") != ""
		for i := 0; expect && i < len(r); i++ {
			expect = r[i] == w[i]
		}
		if got := AudienceMatch(resource, want); got != expect {
			t.Fatalf("AudienceMatch(%q, %q) = %v, want %v", resource, want, got, expect)
		}
		if got := AudienceMatch(strings.ToUpper(resource), want); got != expect && isASCII(resource) {
			t.Fatalf("AudienceMatch(%q, %q) = %v after upper-casing, want %v", strings.ToUpper(resource), want, got, expect)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzDeriveDeviceKey checks group-key derivation against an independent
// HMAC, and that a token signed with the derived key verifies under it.
func FuzzDeriveDeviceKey(f *testing.F) {
	f.Add("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==", regID)
	f.Add(vectorKeyB64, "cap-http-group-dev-01")
	f.Add(strings.TrimRight(vectorKeyB64, "="), "Ünïcode")
	f.Add("", "a")
	f.Add("AAAA", "")
	f.Fuzz(func(t *testing.T, groupKey, registrationID string) {
		k, err := DeriveDeviceKey(groupKey, registrationID)
		gk := refKey(groupKey)
		if err != nil {
			if !fault.Is(err, fault.Invalid) {
				t.Fatalf("error of kind %v: %v", fault.KindOf(err), err)
			}
			if gk != nil && registrationID != "" {
				t.Fatalf("DeriveDeviceKey(%q, %q) refused a usable key: %v", groupKey, registrationID, err)
			}
			return
		}
		if gk == nil || registrationID == "" {
			t.Fatalf("DeriveDeviceKey(%q, %q) accepted an unusable key or ID", groupKey, registrationID)
		}
		h := hmac.New(sha256.New, gk)
		h.Write([]byte(registrationID))
		if want := base64.StdEncoding.EncodeToString(h.Sum(nil)); k != want {
			t.Fatalf("DeriveDeviceKey(%q, %q) = %q, want %q", groupKey, registrationID, k, want)
		}
		tok, err := Parse(Sign("scope/registrations/"+escape(registrationID), "registration", refKey(k), fuzzNow))
		if err != nil {
			return // an ID too long for a token
		}
		if err := tok.VerifyAny(fuzzNow, 0, groupKey, k); err != nil {
			t.Fatalf("token signed with the derived key: %v", err)
		}
		if tok.VerifyAny(fuzzNow, 0, groupKey) == nil {
			t.Fatal("token signed with the derived key verified with the group key")
		}
	})
}
