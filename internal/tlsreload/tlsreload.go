// Package tlsreload serves a TLS certificate that can be replaced while
// listeners run: tls.Config.GetCertificate reads an atomically swapped set
// of certificates, Reload loads a new set (on SIGHUP, say), and Watch
// reloads when the certificate and key files change on disk. A new set that
// fails to load is logged and the old one kept, so a botched renewal never
// takes the listeners down.
package tlsreload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Watch looks at the files.
const DefaultInterval = 5 * time.Second

// Loader returns the certificates to serve, in order of preference (the
// first one a client supports is served, as with tls.Config.Certificates).
type Loader func() ([]tls.Certificate, error)

// Options configure a Reloader.
type Options struct {
	// Files are watched by Watch: when any file's modification time, size
	// or identity changes, the certificates are reloaded. Renewals that
	// write a new file and rename it over the old one are seen, since the
	// path is looked up afresh each time. None: Watch only waits.
	Files []string
	// Interval between looks at Files; DefaultInterval if 0.
	Interval time.Duration
	// Logger gets a line per reload; nil discards.
	Logger *slog.Logger
	// Refresh, when positive, reloads the certificates at this interval
	// whatever the files do: for material the loader re-issues or reads
	// from a shared store, which no file change announces.
	Refresh time.Duration
	// Initial, when set, are served until the first reload instead of
	// calling the loader in New (the caller has just loaded them).
	Initial []tls.Certificate
}

// Reloader holds the certificates the listeners serve.
type Reloader struct {
	load     Loader
	files    []string
	interval time.Duration
	refresh  time.Duration
	log      *slog.Logger

	certs atomic.Pointer[[]tls.Certificate]
	mu    sync.Mutex // serialises Reload
}

// New loads the certificates once; failing that, it returns the error (a
// server cannot start without them).
func New(load Loader, opts Options) (*Reloader, error) {
	r := &Reloader{load: load, files: opts.Files, interval: opts.Interval, refresh: opts.Refresh, log: opts.Logger}
	if r.interval <= 0 {
		r.interval = DefaultInterval
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	load = func() ([]tls.Certificate, error) {
		if opts.Initial != nil {
			return opts.Initial, nil
		}
		return r.load()
	}
	certs, err := checked(load)
	if err != nil {
		return nil, err
	}
	r.certs.Store(&certs)
	return r, nil
}

// checked calls load and insists on at least one certificate with a key
// and a parsable leaf.
func checked(load Loader) ([]tls.Certificate, error) {
	certs, err := load()
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	certs = slices.Clone(certs) // Leaf is filled in below
	for i := range certs {
		if len(certs[i].Certificate) == 0 || certs[i].PrivateKey == nil {
			return nil, errors.New("a certificate without its chain or key")
		}
		if certs[i].Leaf == nil {
			leaf, err := x509.ParseCertificate(certs[i].Certificate[0])
			if err != nil {
				return nil, fmt.Errorf("certificate: %w", err)
			}
			certs[i].Leaf = leaf
		}
	}
	return certs, nil
}

// Reload loads the certificates again and serves them to new connections.
// On failure the current ones stay, a warning is logged, and the error is
// returned.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	certs, err := checked(r.load)
	if err != nil {
		r.log.Warn("reloading the TLS certificate failed; still serving the previous one", "err", err)
		return err
	}
	old := r.certs.Swap(&certs)
	level := slog.LevelInfo
	if same(*old, certs) {
		level = slog.LevelDebug
	}
	r.log.Log(context.Background(), level, "TLS certificate reloaded", "subject", certs[0].Leaf.Subject.String(), "notAfter", certs[0].Leaf.NotAfter.UTC().Format(time.RFC3339), "changed", level == slog.LevelInfo)
	return nil
}

// same reports whether a and b hold the same leaf certificates.
func same(a, b []tls.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y tls.Certificate) bool { return x.Leaf.Equal(y.Leaf) })
}

// Certificates are the certificates served now.
func (r *Reloader) Certificates() []tls.Certificate {
	return *r.certs.Load()
}

// GetCertificate is for tls.Config.GetCertificate: the first certificate
// the client supports, else the first (the handshake then fails the way
// it would with tls.Config.Certificates).
func (r *Reloader) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *r.certs.Load()
	if len(certs) > 1 {
		for i := range certs {
			if hello.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
	}
	return &certs[0], nil
}

// Apply makes conf serve the reloader's certificates: GetCertificate is
// set and Certificates cleared (crypto/tls would prefer them when a client
// sends no server name).
func (r *Reloader) Apply(conf *tls.Config) {
	conf.Certificates = nil
	conf.GetCertificate = r.GetCertificate
}

// Watch reloads the certificates whenever the files change, and every
// Refresh interval, until ctx ends. A change seen while a renewal is half
// written (a new certificate with the old key) fails to load and is retried
// at the next change.
func (r *Reloader) Watch(ctx context.Context) {
	var poll, refresh <-chan time.Time
	if len(r.files) > 0 {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		poll = t.C
	}
	if r.refresh > 0 {
		t := time.NewTicker(r.refresh)
		defer t.Stop()
		refresh = t.C
	}
	last := r.stamp()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh:
			_ = r.Reload() // logged
			continue
		case <-poll:
		}
		now := r.stamp()
		if now == last {
			continue
		}
		last = now
		r.log.Info("TLS certificate files changed; reloading", "files", r.files)
		_ = r.Reload() // logged
	}
}

// fileStamp is what Watch compares: enough to notice a rewrite in place
// and a rename over the file.
type fileStamp struct {
	modTime int64
	size    int64
	inode   uint64
	err     bool
}

// stamp describes every watched file; it is comparable.
func (r *Reloader) stamp() string {
	var b []byte
	for _, f := range r.files {
		var s fileStamp
		if fi, err := os.Stat(f); err != nil {
			s.err = true
		} else {
			s.modTime, s.size, s.inode = fi.ModTime().UnixNano(), fi.Size(), inode(fi)
		}
		b = fmt.Appendf(b, "%s:%d:%d:%d:%t;", f, s.modTime, s.size, s.inode, s.err)
	}
	return string(b)
}

// FileLoader loads a PEM certificate chain and its key, checking that they
// belong together.
func FileLoader(certFile, keyFile string) Loader {
	return func() ([]tls.Certificate, error) {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		return []tls.Certificate{cert}, nil
	}
}
