package pki

import "crypto/tls"

// tls12Suites are the TLS 1.2 cipher suites served: ECDHE key exchange
// (forward secrecy) with an AEAD cipher, for ECDSA and RSA certificates.
// CBC, RC4, 3DES and RSA key exchange are refused. TLS 1.3's suites are
// all AEAD and not configurable.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig is the TLS configuration every listener serves with: TLS
// 1.2 or later, TLS 1.2 with tls12Suites only, and certs in order of
// preference. Given several (ECDSA, then RSA), crypto/tls sends the first
// one the client's signature algorithms and cipher suites support, so an
// RSA-only client gets the RSA chain and every other client the ECDSA one.
func ServerConfig(certs []tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: certs,
		MinVersion:   tls.VersionTLS12,
		CipherSuites: append([]uint16(nil), tls12Suites...),
	}
}
