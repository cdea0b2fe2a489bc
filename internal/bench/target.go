package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/usher-iot/usher/internal/deviceclient"
	"github.com/usher-iot/usher/internal/sas"
)

// Target is the DPS and enrollment group the simulated devices register
// with.
type Target struct {
	Endpoint  string // host:port of the transport's listener
	IDScope   string
	GroupKey  string // the enrollment group's primary key; devices derive theirs
	Prefix    string // registration IDs are Prefix + zero-padded index
	Transport string // deviceclient.HTTPS or deviceclient.MQTT
	// TLS is the client configuration every connection uses, the same the
	// baseline uses. Session resumption stays off unless it sets a
	// ClientSessionCache.
	TLS *tls.Config
	// KeepAlive shares HTTPS connections between devices instead of one
	// fresh connection per device. MQTT always connects per device (the
	// client ID is the registration ID).
	KeepAlive bool
	// RetryAfterCap caps the server's retry-after between the registration
	// and its polls; 0 honours it as devices do (at least 1 s), a negative
	// value polls at once.
	RetryAfterCap time.Duration
	// Timeout bounds each registration.
	Timeout time.Duration
}

// RegistrationID is the ID of device i.
func (t Target) RegistrationID(i int) string { return fmt.Sprintf("%s%08d", t.Prefix, i) }

// Registrations returns the Do of a Load that registers device i, and a
// function that releases shared connections afterwards.
func (t Target) Registrations() (do func(ctx context.Context, i int) error, release func()) {
	dialers := NewDialers(t.Endpoint, !t.KeepAlive)
	var shared *http.Client
	release = func() {}
	if t.KeepAlive && t.Transport == deviceclient.HTTPS {
		d := dialers.Dialer(0)
		tr := &http.Transport{
			DialContext:         d.DialContext,
			TLSClientConfig:     t.TLS,
			TLSHandshakeTimeout: 30 * time.Second,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
		}
		shared = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		release = tr.CloseIdleConnections
	}
	maxWait := time.Duration(0) // the client's default cap
	switch {
	case t.RetryAfterCap < 0:
		maxWait = time.Nanosecond
	case t.RetryAfterCap > 0:
		maxWait = t.RetryAfterCap
	}
	do = func(ctx context.Context, i int) error {
		id := t.RegistrationID(i)
		key, err := sas.DeriveDeviceKey(t.GroupKey, id)
		if err != nil {
			return err
		}
		if t.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, t.Timeout)
			defer cancel()
		}
		_, err = deviceclient.Register(ctx, deviceclient.Options{
			Endpoint: t.Endpoint, IDScope: t.IDScope, RegistrationID: id, Key: key,
			Transport: t.Transport, TLSConfig: t.TLS, Dialer: dialers.Dialer(i),
			HTTPClient: shared, MaxPollInterval: maxWait,
		})
		return err
	}
	return do, release
}
