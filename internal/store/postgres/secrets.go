package postgres

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"strings"

	"github.com/usher-iot/usher/internal/fault"
)

// SecretsKeySize is the length of a secrets key: AES-256.
const SecretsKeySize = 32

// sealedPrefix marks a stored value sealed with the secrets key; what
// follows is base64 of the nonce and the AES-GCM ciphertext.
const sealedPrefix = "usher-sealed:v1:"

// secrets seals record bodies and settings at rest, so a dump of the
// database alone reveals no device, group or policy key, nor the TLS keys
// (docs/decisions/0012-multi-node.md). A nil *secrets stores plaintext.
// Values stored without a key stay readable with one, and are sealed when
// next written.
type secrets struct{ aead cipher.AEAD }

func newSecrets(key []byte) (*secrets, error) {
	if key == nil {
		return nil, nil
	}
	if len(key) != SecretsKeySize {
		return nil, fault.New(fault.Invalid, "the secrets key is %d bytes; it must be %d", len(key), SecretsKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "secrets key")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "secrets key")
	}
	return &secrets{aead: aead}, nil
}

func (s *secrets) seal(plain string) string {
	if s == nil {
		return plain
	}
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand does not fail
	out := s.aead.Seal(nonce, nonce, []byte(plain), nil)
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out)
}

// open returns a stored value's plaintext. Errors: fault.Internal for a
// sealed value without a key, with another key, or damaged.
func (s *secrets) open(stored string) (string, error) {
	enc, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil
	}
	if s == nil {
		return "", fault.New(fault.Internal, "the database holds encrypted secrets; start with the secrets key (--secrets-key-file or USHER_SECRETS_KEY)")
	}
	raw, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", fault.New(fault.Internal, "a sealed value is damaged")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", fault.New(fault.Internal, "a sealed value does not open with this secrets key (another key, or damaged)")
	}
	return string(plain), nil
}
