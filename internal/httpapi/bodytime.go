package httpapi

import (
	"net/http"
	"time"
)

// WithBodyTimeout returns h with a deadline on each request body: the client
// must send the whole body within d of the handler being called, or reading
// it fails (the API answers 400) and the connection is closed. The server's
// ReadHeaderTimeout covers the headers; without this, a client sending its
// body one byte at a time would hold a connection for as long as it likes,
// even after being refused, since net/http reads the rest of a refused
// body (up to 256 KiB) before it answers the next request.
//
// Once the body has been read to its end the deadline no longer matters, so
// a handler that then waits a long time (a direct method waits for the
// device) keeps its request: net/http lifts an HTTP/1.1 connection's read
// deadline itself when the body ends, and an HTTP/2 stream's deadline only
// ends its body (TestWithBodyTimeout checks this). Requests without a body
// are passed on as they are.
func WithBodyTimeout(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}
