package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/usher-iot/usher/internal/fault"
)

// vectorKeyB64 is the derived device key of the first §3.3 vector; the SAS
// signature vectors are signed with it.
const vectorKeyB64 = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="

// vectorKey is vectorKeyB64 decoded.
var vectorKey = mustB64(vectorKeyB64)

// mustB64 decodes padded standard base64 or panics.
func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// refSig computes a signature independently of the package under test:
// base64(HMAC-SHA256(key, sr + "\n" + se)).
func refSig(key []byte, sr, se string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sr + "\n" + se))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// refSigEscaped is refSig percent-encoded the way the Node SDK does it.
func refSigEscaped(key []byte, sr, se string) string {
	return url.QueryEscape(refSig(key, sr, se))
}

// wantFault fails t unless err is a fault of kind k whose message contains msg.
func wantFault(t *testing.T, err error, k fault.Kind, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v containing %q", k, msg)
	}
	if !fault.Is(err, k) {
		t.Fatalf("err = %v, want kind %v", err, k)
	}
	if !strings.Contains(fault.MessageOf(err), msg) {
		t.Fatalf("message = %q, want it to contain %q", fault.MessageOf(err), msg)
	}
}
