package mqttapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/wire"
)

// Message forwarding limits.
const (
	webhookQueue   = 1024            // messages waiting to be posted
	webhookWorkers = 4               // posts in flight
	webhookTimeout = 5 * time.Second // per post
	// webhookWarnEvery spaces the warnings about dropped messages.
	webhookWarnEvery = 10 * time.Second
)

// webhook forwards device-to-cloud messages to an HTTP endpoint, one JSON
// POST per message, best effort: the queue is bounded and a full queue
// drops the message with a warning, so devices are never slowed down by the
// endpoint. Serve runs the workers.
type webhook struct {
	url    string
	host   string // for logs: the URL may carry a secret
	client *http.Client
	queue  chan hub.Message
	log    *slog.Logger

	dropped  atomic.Int64
	lastWarn atomic.Int64 // unix nanoseconds
}

func newWebhook(rawURL string, log *slog.Logger) (*webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("mqttapi: the message webhook must be an http or https URL")
	}
	return &webhook{url: rawURL, host: u.Host, client: &http.Client{Timeout: webhookTimeout}, queue: make(chan hub.Message, webhookQueue), log: log}, nil
}

// enqueue queues m without ever blocking.
func (w *webhook) enqueue(m hub.Message) {
	select {
	case w.queue <- m:
		return
	default:
	}
	n := w.dropped.Add(1)
	now := time.Now().UnixNano()
	if last := w.lastWarn.Load(); now-last >= int64(webhookWarnEvery) && w.lastWarn.CompareAndSwap(last, now) {
		w.log.Warn("message webhook queue full; dropping messages", "host", w.host, "droppedTotal", n)
	}
}

// run posts queued messages until ctx ends.
func (w *webhook) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range webhookWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-w.queue:
					w.post(ctx, m)
				}
			}
		})
	}
	wg.Wait()
}

func (w *webhook) post(ctx context.Context, m hub.Message) {
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(encodeJSON(webhookBody(m))))
	if err != nil {
		w.log.Warn("message webhook request", "host", w.host, "err", withoutURL(err))
		return
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := w.client.Do(req)
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			w.log.Warn("message webhook failed", "host", w.host, "deviceId", m.DeviceID, "err", withoutURL(err))
		}
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		w.log.Warn("message webhook refused a message", "host", w.host, "deviceId", m.DeviceID, "status", resp.StatusCode)
	}
}

// withoutURL drops the URL a *url.Error quotes: net/http masks its
// password but not its query, where webhooks often carry a key (Azure
// Functions' ?code=).
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// webhookMessage is the JSON a webhook receives: Usher's own shape, with
// the system properties under IoT Hub's message property names.
type webhookMessage struct {
	DeviceID         string            `json:"deviceId"`
	ModuleID         string            `json:"moduleId,omitempty"`
	EnqueuedTime     string            `json:"enqueuedTimeUtc"`
	SystemProperties map[string]string `json:"systemProperties"`
	Properties       map[string]string `json:"properties"`
	// Body is the message as text when it is UTF-8 (BodyEncoding
	// "utf-8"), else base64 (BodyEncoding "base64").
	Body         string `json:"body"`
	BodyEncoding string `json:"bodyEncoding"`
}

func webhookBody(m hub.Message) webhookMessage {
	out := webhookMessage{DeviceID: m.DeviceID, ModuleID: m.ModuleID, EnqueuedTime: wire.FormatTime(m.Enqueued),
		SystemProperties: map[string]string{}, Properties: m.Properties}
	if out.Properties == nil {
		out.Properties = map[string]string{}
	}
	sys := m.System
	for name, v := range map[string]string{
		"message-id": sys.MessageID, "correlation-id": sys.CorrelationID, "user-id": sys.UserID, "to": sys.To,
		"absolute-expiry-time": sys.Expiry, "content-type": sys.ContentType, "content-encoding": sys.ContentEncoding,
		"iothub-interface-id": sys.InterfaceID, "dt-subject": sys.Subject, "iothub-outputname": sys.OutputName,
	} {
		if v != "" {
			out.SystemProperties[name] = v
		}
	}
	if utf8.Valid(m.Body) {
		out.Body, out.BodyEncoding = string(m.Body), "utf-8"
	} else {
		out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	return out
}
