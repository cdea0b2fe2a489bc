//go:build !unix

package bench

func setFreshOptions(uintptr) error { return nil }
