package dps

import (
	"strings"
	"sync"
	"time"
)

// proofCache remembers, for a short while, proofs that attestation has
// accepted, so that a device's polls (which carry the same token as its
// request) do not repeat the enrollment reads and HMACs. A remembered proof
// only answers the poll of an operation; registering always attests in
// full, so a disabled or deleted enrollment stops new registrations at once
// and old operations' polls within proofTTL.
type proofCache struct {
	mu      sync.Mutex
	entries map[string]time.Time // key → valid until
}

// Bounds of the cache: entries live at most proofTTL (and never past the
// token's own expiry); a full cache first drops expired entries, then all.
const (
	proofTTL        = time.Minute
	proofCacheLimit = 1 << 16
)

func proofKey(idScope, registrationID string, p Proof) string {
	return strings.ToLower(idScope) + "\x00" + strings.ToLower(registrationID) + "\x00" + p.SASToken
}

func (c *proofCache) remember(key string, now, tokenExpiry time.Time) {
	until := now.Add(proofTTL)
	if tokenExpiry.Before(until) {
		until = tokenExpiry
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]time.Time{}
	}
	if len(c.entries) >= proofCacheLimit {
		for k, t := range c.entries {
			if !t.After(now) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= proofCacheLimit {
			clear(c.entries)
		}
	}
	c.entries[key] = until
}

func (c *proofCache) accepted(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.entries[key]
	if ok && !until.After(now) {
		delete(c.entries, key)
		return false
	}
	return ok
}
