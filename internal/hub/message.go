package hub

import (
	"context"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// Device-to-cloud message limits (hub-protocol.md §6.4, §9).
const (
	// MaxMessageBytes is the largest message body a device may send.
	MaxMessageBytes = 256 << 10
	// DefaultMessageLogSize is how many messages the log keeps unless
	// configured otherwise.
	DefaultMessageLogSize = 10_000
	// MaxMessagesPage bounds one read of the log.
	MaxMessagesPage = 1000
)

// Message is a device-to-cloud (telemetry) message as the hub received it.
type Message struct {
	// Seq orders the log; the store assigns it and it only grows.
	Seq      int64
	DeviceID string
	ModuleID string // "" when the device itself sent it
	Enqueued time.Time
	System   SystemProperties
	// Properties are the application properties, names and values
	// percent-decoded.
	Properties map[string]string
	Body       []byte
}

// SystemProperties are the message properties IoT Hub defines
// (hub-protocol.md §6.3, "Property bag"). Each is "" when the device did
// not set it.
type SystemProperties struct {
	MessageID       string // $.mid
	CorrelationID   string // $.cid
	UserID          string // $.uid
	To              string // $.to
	Expiry          string // $.exp, an ISO 8601 time as the device wrote it
	ContentType     string // $.ct
	ContentEncoding string // $.ce
	InterfaceID     string // $.ifid
	Subject         string // $.sub (dt-subject)
	OutputName      string // $.on, a module's output
}

// ReceiveMessage records a message a connected device (or module) sent:
// it stamps the enqueued time and appends it to the log, which keeps the
// newest keep messages (DefaultMessageLogSize when keep < 1). It returns
// the message as recorded. Errors: fault.TooLarge for a body over
// MaxMessageBytes, fault.Invalid without a device ID, store failures.
func (s *Service) ReceiveMessage(ctx context.Context, m Message, keep int) (Message, error) {
	if m.DeviceID == "" {
		return m, fault.New(fault.Invalid, "a message needs the device that sent it")
	}
	if len(m.Body) > MaxMessageBytes {
		return m, fault.New(fault.TooLarge, "the message is %d bytes; the limit is %d", len(m.Body), MaxMessageBytes)
	}
	if keep < 1 {
		keep = DefaultMessageLogSize
	}
	if m.Enqueued.IsZero() {
		m.Enqueued = s.now().UTC()
	}
	return m, s.store.AppendMessage(ctx, m, keep)
}

// Messages reads the log after the sequence number afterSeq (0 for the
// oldest kept), oldest first, at most limit (capped at MaxMessagesPage,
// which is also the default when limit < 1) messages.
func (s *Service) Messages(ctx context.Context, afterSeq int64, limit int) ([]Message, error) {
	if limit < 1 || limit > MaxMessagesPage {
		limit = MaxMessagesPage
	}
	return s.store.Messages(ctx, max(afterSeq, 0), limit)
}
