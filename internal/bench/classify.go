package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/usher-iot/usher/internal/deviceclient"
)

// Error kinds a report counts failures by.
const (
	KindAuth     = "auth"     // 401/403, or MQTT CONNACK not authorized / bad credentials
	KindRefused  = "refused"  // TCP connection refused, or another CONNACK refusal
	KindTimeout  = "timeout"  // deadline exceeded, network timeout
	KindCanceled = "canceled" // the run was interrupted
	KindReset    = "reset"    // connection reset or closed by the server
	KindTLS      = "tls"      // handshake or certificate failure
	KindPorts    = "ports"    // no local address or port left (EADDRNOTAVAIL, EADDRINUSE)
	KindFailed   = "failed"   // the registration ended failed or disabled
	KindOther    = "other"
	// An HTTP (or MQTT response) refusal other than 401/403 is "http NNN".
)

// Classify names the kind of a registration or handshake error, by type
// and errno, never by message.
func Classify(err error) string {
	var (
		se  *deviceclient.ServiceError
		ce  *deviceclient.ConnectionRefusedError
		re  *deviceclient.RegistrationError
		ne  net.Error
		ae  tls.AlertError
		rae *tls.RecordHeaderError
		ue  x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
		ve  *tls.CertificateVerificationError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		if se.Status == 401 || se.Status == 403 {
			return KindAuth
		}
		return "http " + strconv.Itoa(se.Status)
	case errors.As(err, &ce):
		if ce.ReturnCode == packets.ErrRefusedNotAuthorised || ce.ReturnCode == packets.ErrRefusedBadUsernameOrPassword {
			return KindAuth
		}
		return KindRefused
	case errors.As(err, &re):
		return KindFailed
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return KindPorts
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return KindReset
	case errors.As(err, &ae), errors.As(err, &rae), errors.As(err, &ue), errors.As(err, &he),
		errors.As(err, &cie), errors.As(err, &ve):
		return KindTLS
	case errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	}
	return KindOther
}
