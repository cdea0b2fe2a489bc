package dps

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Operation is one registration attempt, as a device polls it.
type Operation struct {
	ID             string
	RegistrationID string
	Status         RegistrationStatus // assigned, failed or disabled once done
	Registration   Registration       // the registration state to answer with
	Created        time.Time
}

// OperationTTL is how long finished operations can be polled.
const OperationTTL = 24 * time.Hour

// newOperationID returns an ID shaped like Azure's
// ("5.<16 hex>.<uuid>"): URL- and topic-safe.
func newOperationID() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	h := hex.EncodeToString(b[:])
	return "5." + h[:16] + "." + h[16:24] + "-" + h[24:28] + "-" + h[28:32] + "-" + h[32:36] + "-" + h[36:48]
}
