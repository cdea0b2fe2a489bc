package httpapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/httpapi"
)

// TestWithBodyTimeout checks that a body must arrive within the deadline
// and that the deadline is lifted once it has: a handler that then waits
// longer than the deadline keeps its request and its connection.
func TestWithBodyTimeout(t *testing.T) {
	const d = 300 * time.Millisecond
	srv := httptest.NewServer(httpapi.WithBodyTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "slow body", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(3 * d):
		case <-r.Context().Done():
			return // the client sees no answer
		}
		_, _ = io.WriteString(w, "waited")
	}), d))
	t.Cleanup(srv.Close)

	h2 := httptest.NewUnstartedServer(srv.Config.Handler)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	for name, s := range map[string]*httptest.Server{"http/1.1": srv, "h2": h2} {
		t.Run("ok/handler waits past the deadline after reading the body over "+name, func(t *testing.T) {
			res, err := s.Client().Post(s.URL, "application/json", strings.NewReader(`{"a":1}`))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 || string(b) != "waited" {
				t.Errorf("got %d %q over %s, want 200 \"waited\"", res.StatusCode, b, res.Proto)
			}
			if s == h2 && res.ProtoMajor != 2 {
				t.Errorf("answered over %s, want HTTP/2", res.Proto)
			}
		})
	}

	t.Run("400/body slower than the deadline", func(t *testing.T) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", res.StatusCode)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("the connection is still open after a body timed out")
		}
	})
}
