package dps

import (
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

func validateKey(name, k string) error {
	if err := sas.ValidateKey(k, MinKeyBytes, MaxKeyBytes); err != nil {
		return fault.New(fault.Invalid, "attestation.symmetricKey.%s: %s", name, fault.MessageOf(err))
	}
	return nil
}

// fillKeys completes an attestation for a write: keys the request left empty
// are taken from the stored record (an update) or generated (a create).
func fillKeys(a *Attestation, stored *Attestation) error {
	if a.Type != SymmetricKey {
		return nil
	}
	for _, k := range []struct {
		dst *string
		old string
	}{{&a.PrimaryKey, storedKey(stored, true)}, {&a.SecondaryKey, storedKey(stored, false)}} {
		if *k.dst != "" {
			continue
		}
		if k.old != "" {
			*k.dst = k.old
			continue
		}
		key, err := sas.NewKey(GeneratedKeyBytes)
		if err != nil {
			return err
		}
		*k.dst = key
	}
	return nil
}

func storedKey(a *Attestation, primary bool) string {
	if a == nil || a.Type != SymmetricKey {
		return ""
	}
	if primary {
		return a.PrimaryKey
	}
	return a.SecondaryKey
}
