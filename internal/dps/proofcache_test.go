package dps

import (
	"testing"
	"time"
)

func TestProofCache(t *testing.T) {
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		expiry   time.Time // the token's
		askAfter time.Duration
		key      string
		want     bool
	}{
		{"same proof soon after", now.Add(time.Hour), time.Second, "scope\x00dev\x00tok", true},
		{"another token", now.Add(time.Hour), time.Second, "scope\x00dev\x00other", false},
		{"after the cache's lifetime", now.Add(time.Hour), proofTTL, "scope\x00dev\x00tok", false},
		{"after the token expired", now.Add(10 * time.Second), 11 * time.Second, "scope\x00dev\x00tok", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c proofCache
			c.remember("scope\x00dev\x00tok", now, tc.expiry)
			if got := c.accepted(tc.key, now.Add(tc.askAfter)); got != tc.want {
				t.Errorf("accepted = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProofCacheBounded(t *testing.T) {
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	var c proofCache
	for i := range proofCacheLimit + 10 {
		c.remember(string(rune(i)), now, now.Add(time.Hour))
	}
	if n := len(c.entries); n > proofCacheLimit {
		t.Errorf("cache holds %d entries, limit %d", n, proofCacheLimit)
	}
}

func TestProofKeyFoldsIDsNotTokens(t *testing.T) {
	a := proofKey("0ne00ABC", "Dev-1", Proof{SASToken: "SharedAccessSignature sig=A"})
	if a != proofKey("0ne00abc", "dev-1", Proof{SASToken: "SharedAccessSignature sig=A"}) {
		t.Error("ID scope and registration ID are case-insensitive")
	}
	if a == proofKey("0ne00abc", "dev-1", Proof{SASToken: "SharedAccessSignature sig=a"}) {
		t.Error("tokens must match exactly")
	}
}
