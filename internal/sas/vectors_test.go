package sas

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// loadJSON decodes a file under testdata into v.
func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestDerivedKeyVectors(t *testing.T) {
	var file struct {
		Vectors []struct{ GroupKey, RegistrationID, DerivedKey string }
	}
	loadJSON(t, "derived-keys.json", &file)
	if len(file.Vectors) != 3 {
		t.Fatalf("got %d vectors, want 3", len(file.Vectors))
	}
	for _, v := range file.Vectors {
		t.Run("ok/"+v.RegistrationID, func(t *testing.T) {
			got, err := DeriveDeviceKey(v.GroupKey, v.RegistrationID)
			if err != nil {
				t.Fatal(err)
			}
			if got != v.DerivedKey {
				t.Errorf("DeriveDeviceKey = %s, want %s", got, v.DerivedKey)
			}
		})
	}
}

func TestSignatureVectors(t *testing.T) {
	var file struct {
		Key, SE, Audience string
		Vectors           []struct{ Style, SR, Sig string }
	}
	loadJSON(t, "sas-vectors.json", &file)
	if len(file.Vectors) != 3 {
		t.Fatalf("got %d vectors, want 3", len(file.Vectors))
	}
	expiry := time.Unix(1700000000, 0)
	if file.SE != "1700000000" {
		t.Fatalf("se = %s, want 1700000000", file.SE)
	}
	for i, v := range file.Vectors {
		t.Run("ok/"+v.Style, func(t *testing.T) {
			signed, err := SignKey(v.SR, "registration", file.Key, expiry)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := Parse(signed)
			if err != nil {
				t.Fatal(err)
			}
			if got := b64(tok.Signature); got != v.Sig {
				t.Errorf("signature = %s, want %s", got, v.Sig)
			}
			if err := tok.VerifyAny(expiry, 0, file.Key); err != nil {
				t.Errorf("VerifyAny: %v", err)
			}
			if res, _ := tok.Resource(); !AudienceMatch(res, file.Audience) {
				t.Errorf("resource %q does not match audience %q", res, file.Audience)
			}
		})
		for j, w := range file.Vectors {
			if i == j {
				continue
			}
			t.Run("401/"+v.Style+" signed over "+w.Style, func(t *testing.T) {
				tok := Token{RawResource: v.SR, RawExpiry: file.SE, Signature: mustB64(w.Sig), Expiry: expiry}
				if err := tok.VerifyAny(expiry, 0, file.Key); err == nil {
					t.Error("a signature over a differently encoded sr verified")
				}
			})
		}
	}
}
