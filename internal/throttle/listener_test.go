package throttle

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A connection beyond the limit is closed at once, not queued; closing an
// admitted one frees its slot.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var rejected atomic.Int32
	ln := LimitListener(inner, 2, func() { rejected.Add(1) })
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// refusedSoon dials and reports whether the server closed the
	// connection within a generous deadline: the dial or a read ends in a
	// reset or EOF rather than a timeout.
	refusedSoon := func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return true // reset before connect returned
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}

	dial()
	dial()
	s1, s2 := <-accepted, <-accepted
	if !refusedSoon() {
		t.Fatal("the connection over the limit was not closed")
	}
	if n := rejected.Load(); n != 1 {
		t.Errorf("onReject called %d times, want 1", n)
	}
	// Free a slot: the next connection is admitted.
	s1.Close()
	s1.Close() // a second Close frees nothing more
	fourth := dial()
	s4 := <-accepted
	if _, err := s4.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(fourth, make([]byte, 1)); err != nil {
		t.Fatalf("the connection admitted after a slot was freed: %v", err)
	}
	if !refusedSoon() {
		t.Fatal("the limit was not kept after a slot was freed")
	}
	s2.Close()
	s4.Close()
}

func TestLimitListenerUnlimited(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	if ln := LimitListener(inner, 0, nil); ln != inner {
		t.Error("a limit of 0 wrapped the listener")
	}
}
