package sas

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"

	"github.com/usher-iot/usher/internal/fault"
)

// DeriveDeviceKey returns the key a device of a symmetric-key enrollment group
// signs with: base64(HMAC-SHA256(base64decode(groupKey), registrationID)),
// the registration ID taken as its UTF-8 bytes. groupKey may be padded or
// unpadded base64. An empty or undecodable group key or an empty registration
// ID is a fault Invalid.
func DeriveDeviceKey(groupKey, registrationID string) (string, error) {
	key, err := decodeKey(groupKey, "group key")
	if err != nil {
		return "", err
	}
	if registrationID == "" {
		return "", fault.New(fault.Invalid, "registration ID is empty")
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// NewKey returns n random bytes from crypto/rand as padded standard base64;
// IoT Hub and DPS generate 32-byte keys. n < 1 is a fault Invalid, and a
// failure of the random source a fault Internal.
func NewKey(n int) (string, error) {
	if n < 1 {
		return "", fault.New(fault.Invalid, "key length must be at least 1 byte; got %d", n)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fault.Wrap(fault.Internal, err, "could not generate a key")
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ValidateKey checks a key an operator or API caller supplied: it must be
// canonical, padded standard base64 (exactly what NewKey produces, no line
// breaks, no unpadded form) decoding to min..max bytes. Padding is required
// because the key is handed back to device and service SDKs, some of whose
// decoders insist on it, even though this package's own decoding accepts
// unpadded keys. Failures are fault Invalid, for example "key must be base64
// encoding 16 to 64 bytes; got 8 bytes".
func ValidateKey(k string, min, max int) error {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || base64.StdEncoding.EncodeToString(b) != k {
		return fault.New(fault.Invalid, "key must be base64 encoding %d to %d bytes; it is not valid padded base64", min, max)
	}
	if len(b) < min || len(b) > max {
		return fault.New(fault.Invalid, "key must be base64 encoding %d to %d bytes; got %d bytes", min, max, len(b))
	}
	return nil
}

// decodeKey decodes a base64 key (padded or not) that must not be empty; what
// names the key in the fault Invalid message.
func decodeKey(k, what string) ([]byte, error) {
	b, err := decodeBase64(k)
	if err != nil {
		return nil, fault.New(fault.Invalid, "%s is not valid base64", what)
	}
	if len(b) == 0 {
		return nil, fault.New(fault.Invalid, "%s is empty", what)
	}
	return b, nil
}
