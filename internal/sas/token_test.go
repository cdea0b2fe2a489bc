package sas

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/usher-iot/usher/internal/fault"
)

// Audiences and signatures of the §3.3 vectors (se 1700000000).
const (
	regID   = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	srRaw   = "0ne00000A0A/registrations/" + regID
	srLower = "0ne00000A0A%2fregistrations%2f" + regID
	srUpper = "0ne00000A0A%2Fregistrations%2F" + regID
	se      = "1700000000"

	sigNode  = "hUOH8hSLSay+bfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4="
	sigC     = "d0v1ROtrJfDl1lL+6Gm6mCyZUBsvFsT3HgNEOWfYmE0="
	sigCSUpr = "t6/8JHWQuQgM9mXdYf/uIqa3dKECOEk9Rr4WrFV19q0="

	tokNode = "SharedAccessSignature sr=" + srRaw + "&sig=hUOH8hSLSay%2BbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D&skn=registration&se=" + se
	tokC    = "SharedAccessSignature sr=" + srLower + "&sig=d0v1ROtrJfDl1lL%2b6Gm6mCyZUBsvFsT3HgNEOWfYmE0%3d&se=" + se + "&skn=registration"
	tokCS   = "SharedAccessSignature sr=" + srUpper + "&sig=t6%2F8JHWQuQgM9mXdYf%2FuIqa3dKECOEk9Rr4WrFV19q0%3D&se=" + se + "&skn=registration"
)

// seTime is se as a time.
var seTime = time.Unix(1700000000, 0)

func TestParse(t *testing.T) {
	aziotSR := "0ne00000a0a/registrations/dev1"
	aziot := "SharedAccessSignature sr=" + aziotSR + "&sig=" + refSigEscaped(vectorKey, aziotSR, se) + "&se=" + se + "&skn=registration"
	hubSR := "localhost%2Fdevices%2Fcap-mqtt-hub-dev"
	hub := "SharedAccessSignature sr=" + hubSR + "&sig=" + refSigEscaped(vectorKey, hubSR, se) + "&se=" + se

	tok := func(sr, sig, skn string) Token {
		return Token{RawResource: sr, RawExpiry: se, Signature: mustB64(sig), Expiry: seTime, KeyName: skn}
	}
	tests := []struct {
		name string
		in   string
		want Token
	}{
		{"ok/node order sr sig skn se, raw sr", tokNode, tok(srRaw, sigNode, "registration")},
		{"ok/c order sr sig se skn, lowercase hex", tokC, tok(srLower, sigC, "registration")},
		{"ok/csharp uppercase hex", tokCS, tok(srUpper, sigCSUpr, "registration")},
		{"ok/aziot lowercased resource", aziot, tok(aziotSR, refSig(vectorKey, aziotSR, se), "registration")},
		{"ok/hub device no skn", hub, tok(hubSR, refSig(vectorKey, hubSR, se), "")},
		{"ok/se first", "SharedAccessSignature se=" + se + "&skn=registration&sig=hUOH8hSLSay%2BbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D&sr=" + srRaw, tok(srRaw, sigNode, "registration")},
		{"ok/sig lowercase %2f", "SharedAccessSignature sr=" + srUpper + "&sig=t6%2f8JHWQuQgM9mXdYf%2fuIqa3dKECOEk9Rr4WrFV19q0%3d&se=" + se, tok(srUpper, sigCSUpr, "")},
		{"ok/sig with unescaped plus", "SharedAccessSignature sr=" + srRaw + "&sig=" + sigNode + "&se=" + se, tok(srRaw, sigNode, "")},
		{"ok/sig unpadded", "SharedAccessSignature sr=" + srRaw + "&sig=hUOH8hSLSay%2BbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4&se=" + se, tok(srRaw, sigNode, "")},
		{"ok/unknown fields ignored even twice", tokNode + "&x=1&x=2&SR=other", tok(srRaw, sigNode, "registration")},
		{"ok/trailing ampersand", tokNode + "&", tok(srRaw, sigNode, "registration")},
		{"ok/surrounding spaces and tabs", " \t" + tokNode + "  ", tok(srRaw, sigNode, "registration")},
		{"ok/skn percent-decoded", "SharedAccessSignature sr=h&sig=" + sigNode + "&se=" + se + "&skn=my%20policy", tok("h", sigNode, "my policy")},
		{"ok/empty skn", "SharedAccessSignature sr=h&sig=" + sigNode + "&se=" + se + "&skn=", tok("h", sigNode, "")},
		{"ok/value containing =", "SharedAccessSignature sr=a=b&sig=" + sigNode + "&se=" + se, tok("a=b", sigNode, "")},
		{"ok/se zero", "SharedAccessSignature sr=h&sig=" + sigNode + "&se=0", Token{RawResource: "h", RawExpiry: "0", Signature: mustB64(sigNode), Expiry: time.Unix(0, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const sig = "&sig=hUOH8hSLSay%2BbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D"
	const p = "SharedAccessSignature "
	tests := []struct {
		name string
		in   string
		msg  string
	}{
		{"401/empty", "", "must start with"},
		{"401/bearer", "Bearer abc.def.ghi", "must start with"},
		{"401/lowercase prefix", "sharedaccesssignature sr=h" + sig + "&se=1", "must start with"},
		{"401/no space after prefix", "SharedAccessSignaturesr=h" + sig + "&se=1", "must start with"},
		{"401/two spaces after prefix", "SharedAccessSignature  sr=h" + sig + "&se=1", "exactly one space"},
		{"401/prefix only", p, "must start with"},
		{"401/prefix and an empty field only", p + "&", "has no sr"},
		{"401/garbage", p + "&&&", "has no sr"},
		{"401/field without =", p + "sr=h" + sig + "&se=1&junk", "without '='"},
		{"401/missing sr", p + sig[1:] + "&se=1", "has no sr"},
		{"401/missing sig", p + "sr=h&se=1", "has no sig"},
		{"401/missing se", p + "sr=h" + sig, "has no se"},
		{"401/empty sr", p + "sr=" + sig + "&se=1", "empty sr"},
		{"401/empty sig", p + "sr=h&sig=&se=1", "empty sig"},
		{"401/empty se", p + "sr=h" + sig + "&se=", "empty se"},
		{"401/duplicate sr", p + "sr=h&sr=h" + sig + "&se=1", "more than one sr"},
		{"401/duplicate sig", p + "sr=h" + sig + sig + "&se=1", "more than one sig"},
		{"401/duplicate se", p + "sr=h" + sig + "&se=1&se=1", "more than one se"},
		{"401/duplicate skn", p + "sr=h" + sig + "&se=1&skn=a&skn=a", "more than one skn"},
		{"401/non-numeric se", p + "sr=h" + sig + "&se=soon", "whole number"},
		{"401/negative se", p + "sr=h" + sig + "&se=-5", "whole number"},
		{"401/plus-signed se", p + "sr=h" + sig + "&se=+5", "whole number"},
		{"401/fractional se", p + "sr=h" + sig + "&se=1700000000.5", "whole number"},
		{"401/overflowing se", p + "sr=h" + sig + "&se=99999999999999999999", "whole number"},
		{"401/sig not base64", p + "sr=h&sig=%21%21%21%21&se=1", "sig is not valid base64"},
		{"401/sig with space", p + "sr=h&sig=hUOH8hSLSay%20bfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D&se=1", "sig is not valid base64"},
		{"401/sig with line break", p + "sr=h&sig=hUOH8hSLSay%0AbfE5WjQhRmpIvWZdSog5Tlv8EyKqBg4%3D&se=1", "sig is not valid base64"},
		{"401/sig bad escape", p + "sr=h&sig=abc%zz&se=1", "sig is not valid percent-encoding"},
		{"401/sr bad escape", p + "sr=h%2" + sig + "&se=1", "sr is not valid percent-encoding"},
		{"401/skn bad escape", p + "sr=h" + sig + "&se=1&skn=%g0", "skn is not valid percent-encoding"},
		{"401/over-long", p + "sr=" + strings.Repeat("a", maxTokenLen) + sig + "&se=1", "longer than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			wantFault(t, err, fault.Unauthenticated, tt.msg)
			if diff := cmp.Diff(Token{}, got); diff != "" {
				t.Errorf("Parse returned a token with its error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLengthLimit(t *testing.T) {
	base := Sign("h", "", vectorKey, seTime)
	pad := "&x=" + strings.Repeat("p", maxTokenLen-len(base)-len("&x="))
	if _, err := Parse(base + pad); err != nil {
		t.Errorf("4096 bytes: %v", err)
	}
	_, err := Parse(base + pad + "p")
	wantFault(t, err, fault.Unauthenticated, "longer than 4096 bytes")
}

func TestResource(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"ok/raw", srRaw, srRaw},
		{"ok/lowercase hex", srLower, srRaw},
		{"ok/uppercase hex", srUpper, srRaw},
		{"ok/plus stays plus", "host/devices/a+b", "host/devices/a+b"},
		{"ok/port", "localhost%3A8884%2Fdevices%2Fdev", "localhost:8884/devices/dev"},
		{"ok/decoded once only", "host%2Fdevices%2F%2524edgeAgent", "host/devices/%24edgeAgent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Token{RawResource: tt.raw}.Resource()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Resource() = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("401/bad escape", func(t *testing.T) {
		_, err := Token{RawResource: "a%zz"}.Resource()
		wantFault(t, err, fault.Unauthenticated, "sr is not valid percent-encoding")
	})
}

func TestVerify(t *testing.T) {
	const skew = time.Minute
	other := mustB64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	tests := []struct {
		name string
		tok  string
		key  []byte
		now  time.Time
		msg  string // "" for success
	}{
		{"ok/node raw sr", tokNode, vectorKey, seTime.Add(-time.Hour), ""},
		{"ok/c lowercase hex sr", tokC, vectorKey, seTime.Add(-time.Hour), ""},
		{"ok/csharp uppercase hex sr", tokCS, vectorKey, seTime.Add(-time.Hour), ""},
		{"ok/expires exactly now", tokNode, vectorKey, seTime, ""},
		{"ok/expired within skew", tokNode, vectorKey, seTime.Add(skew - time.Second), ""},
		{"ok/expired exactly skew ago", tokNode, vectorKey, seTime.Add(skew), ""},
		{"401/expired", tokNode, vectorKey, seTime.Add(skew + time.Second), "token expired"},
		{"401/wrong key", tokNode, other, seTime, "signature does not match"},
		{"401/empty key", tokNode, nil, seTime, "signature does not match"},
		{"401/wrong key and expired reports signature", tokNode, other, seTime.Add(time.Hour), "signature does not match"},
		{"401/se changed", strings.Replace(tokNode, "se="+se, "se=1700000001", 1), vectorKey, seTime, "signature does not match"},
		{"401/sr re-encoded lowercase", strings.Replace(tokNode, "sr="+srRaw, "sr="+srLower, 1), vectorKey, seTime, "signature does not match"},
		{"401/sr re-encoded uppercase", strings.Replace(tokC, "sr="+srLower, "sr="+srUpper, 1), vectorKey, seTime, "signature does not match"},
		{"401/sr decoded", strings.Replace(tokCS, "sr="+srUpper, "sr="+srRaw, 1), vectorKey, seTime, "signature does not match"},
		{"401/sr case changed", strings.Replace(tokNode, "0ne00000A0A", "0ne00000a0a", 1), vectorKey, seTime, "signature does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Parse(tt.tok)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = tok.Verify(tt.key, tt.now, skew)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantFault(t, err, fault.Unauthenticated, tt.msg)
		})
	}
}

func TestVerifyNegativeSkewIsZero(t *testing.T) {
	tok, err := Parse(tokNode)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Verify(vectorKey, seTime, -time.Hour); err != nil {
		t.Errorf("at expiry with negative skew: %v", err)
	}
	err = tok.Verify(vectorKey, seTime.Add(time.Second), -time.Hour)
	wantFault(t, err, fault.Unauthenticated, "token expired")
}

func TestVerifyAny(t *testing.T) {
	const wrong = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	unpadded := strings.TrimRight(vectorKeyB64, "=")
	tests := []struct {
		name string
		now  time.Time
		keys []string
		msg  string
	}{
		{"ok/primary", seTime, []string{vectorKeyB64, wrong}, ""},
		{"ok/secondary", seTime, []string{wrong, vectorKeyB64}, ""},
		{"ok/undecodable key skipped", seTime, []string{"not base64!", vectorKeyB64}, ""},
		{"ok/empty key skipped", seTime, []string{"", vectorKeyB64}, ""},
		{"ok/unpadded key", seTime, []string{unpadded}, ""},
		{"401/no keys", seTime, nil, "signature does not match"},
		{"401/both wrong", seTime, []string{wrong, wrong}, "signature does not match"},
		{"401/only undecodable", seTime, []string{"%%%"}, "signature does not match"},
		{"401/secondary matches but expired", seTime.Add(time.Hour), []string{wrong, vectorKeyB64}, "token expired"},
	}
	tok, err := Parse(tokC)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tok.VerifyAny(tt.now, time.Minute, tt.keys...)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("VerifyAny: %v", err)
				}
				return
			}
			wantFault(t, err, fault.Unauthenticated, tt.msg)
		})
	}
}

func TestSign(t *testing.T) {
	tests := []struct {
		name                  string
		resource, keyName     string
		want                  string
		wantResource, wantSkn string
	}{
		{"ok/node raw sr", srRaw, "registration", tokNode[:strings.Index(tokNode, "&skn")] + "&se=" + se + "&skn=registration", srRaw, "registration"},
		{"ok/csharp sr verbatim", srUpper, "registration", tokCS, srRaw, "registration"},
		{"ok/no key name", "host", "", "SharedAccessSignature sr=host&sig=" + refSigEscaped(vectorKey, "host", se) + "&se=" + se, "host", ""},
		{"ok/key name escaped", "host", "a b&c", "SharedAccessSignature sr=host&sig=" + refSigEscaped(vectorKey, "host", se) + "&se=" + se + "&skn=a%20b%26c", "host", "a b&c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Sign(tt.resource, tt.keyName, vectorKey, seTime)
			if got != tt.want {
				t.Errorf("Sign =\n%s\nwant\n%s", got, tt.want)
			}
			tok, err := Parse(got)
			if err != nil {
				t.Fatalf("Parse(Sign): %v", err)
			}
			if err := tok.Verify(vectorKey, seTime, 0); err != nil {
				t.Errorf("Verify(Sign): %v", err)
			}
			res, _ := tok.Resource()
			if res != tt.wantResource || tok.KeyName != tt.wantSkn {
				t.Errorf("resource, skn = %q, %q; want %q, %q", res, tok.KeyName, tt.wantResource, tt.wantSkn)
			}
		})
	}
}

func TestSignKey(t *testing.T) {
	got, err := SignKey(srUpper, "registration", vectorKeyB64, seTime)
	if err != nil {
		t.Fatal(err)
	}
	if got != tokCS {
		t.Errorf("SignKey = %s, want %s", got, tokCS)
	}
	for _, k := range []string{"", "not base64!", "===="} {
		_, err := SignKey("h", "", k, seTime)
		wantFault(t, err, fault.Invalid, "key")
	}
}
