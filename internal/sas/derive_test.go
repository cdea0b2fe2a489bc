package sas

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/usher-iot/usher/internal/fault"
)

// b64 encodes b as padded standard base64.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestDeriveDeviceKey(t *testing.T) {
	const group = "oiK77Oy7rBw8YB6IS6ukRChAw+Yq6GC61RMrPLSTiOOtdI+XDu0LmLuNm11p+qv2I+adqGUdZHm46zXAQdZoOA=="
	t.Run("ok/unpadded group key", func(t *testing.T) {
		got, err := DeriveDeviceKey(strings.TrimRight(group, "="), "breakroom499-contoso-tstrsd-007")
		if err != nil {
			t.Fatal(err)
		}
		if want := "JC8F96eayuQwwz+PkE7IzjH2lIAjCUnAa61tDigBnSs="; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})
	tests := []struct {
		name, group, reg, msg string
	}{
		{"invalid/group key not base64", "not base64!", "dev1", "group key is not valid base64"},
		{"invalid/group key empty", "", "dev1", "group key is empty"},
		{"invalid/registration ID empty", group, "", "registration ID is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DeriveDeviceKey(tt.group, tt.reg)
			wantFault(t, err, fault.Invalid, tt.msg)
		})
	}
}

func TestNewKey(t *testing.T) {
	a, err := NewKey(32)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKey(32)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 44 || a == b {
		t.Errorf("NewKey(32) = %q, %q; want two different 44-character keys", a, b)
	}
	if err := ValidateKey(a, 32, 32); err != nil {
		t.Errorf("ValidateKey(NewKey(32)): %v", err)
	}
	for _, n := range []int{0, -1} {
		_, err := NewKey(n)
		wantFault(t, err, fault.Invalid, "at least 1 byte")
	}
}

func TestValidateKey(t *testing.T) {
	key := func(n int) string { return b64(make([]byte, n)) }
	tests := []struct {
		name string
		key  string
		msg  string // "" for valid
	}{
		{"ok/16 bytes", key(16), ""},
		{"ok/32 bytes", key(32), ""},
		{"ok/64 bytes", key(64), ""},
		{"invalid/8 bytes", key(8), "key must be base64 encoding 16 to 64 bytes; got 8 bytes"},
		{"invalid/65 bytes", key(65), "got 65 bytes"},
		{"invalid/empty", "", "got 0 bytes"},
		{"invalid/unpadded", strings.TrimRight(key(32), "="), "not valid padded base64"},
		{"invalid/url alphabet", strings.Repeat("-_", 22), "not valid padded base64"},
		{"invalid/line break", key(16)[:12] + "\n" + key(16)[12:], "not valid padded base64"},
		{"invalid/non-canonical padding bits", "AAAAAAAAAAAAAAAAAAAAAB==", "not valid padded base64"},
		{"invalid/spaces", " " + key(32), "not valid padded base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateKey(tt.key, 16, 64)
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantFault(t, err, fault.Invalid, tt.msg)
		})
	}
}
