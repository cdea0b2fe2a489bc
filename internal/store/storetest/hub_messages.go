package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usher-iot/usher/internal/hub"
)

func sampleMessage(i int) hub.Message {
	m := hub.Message{
		DeviceID: fmt.Sprintf("dev-%d", i%2), Enqueued: t0.Add(time.Duration(i) * time.Second),
		System: hub.SystemProperties{MessageID: fmt.Sprintf("msg-%d", i), CorrelationID: "corr", ContentType: "application/json",
			ContentEncoding: "utf-8", Expiry: "2026-11-26T00:00:00.000Z", OutputName: "out1"},
		Properties: map[string]string{"alert": "no", "index": fmt.Sprint(i), "spaced key": "a value & more"},
		Body:       []byte(fmt.Sprintf(`{"n":%d}`, i)),
	}
	switch i {
	case 3:
		m.ModuleID, m.Body = "$edgeHub", []byte{0x00, 0xff, 0xfe, 'x'} // not UTF-8
	case 4:
		m.Properties, m.Body, m.System = nil, nil, hub.SystemProperties{}
	}
	return m
}

// messageLog appends past the bound: the newest messages stay, in order,
// with sequence numbers that only grow, and a reader follows by the last
// number it saw.
func messageLog(t *testing.T, s Store) {
	const keep = 3
	var want []hub.Message
	for i := range 5 {
		m := sampleMessage(i)
		mustNil(t, s.AppendMessage(ctx(), m, keep), fmt.Sprintf("append %d", i))
		want = append(want, m)
	}
	want = want[len(want)-keep:]
	got, err := s.Messages(ctx(), 0, 100)
	mustNil(t, err, "read all")
	ignoreSeq := cmpopts.IgnoreFields(hub.Message{}, "Seq")
	if diff := cmp.Diff(want, got, ignoreSeq, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("the log keeps the newest %d messages (-want +got):\n%s", keep, diff)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("sequence numbers %d then %d, want increasing", got[i-1].Seq, got[i].Seq)
		}
	}
	if got[0].Seq < keep {
		t.Errorf("first kept seq = %d; dropped messages must not give their numbers away", got[0].Seq)
	}

	page, err := s.Messages(ctx(), got[0].Seq, 1)
	mustNil(t, err, "read after the first")
	if len(page) != 1 || page[0].Seq != got[1].Seq {
		t.Fatalf("Messages(after %d, limit 1) = %+v, want seq %d", got[0].Seq, page, got[1].Seq)
	}
	last := got[len(got)-1].Seq
	page, err = s.Messages(ctx(), last, 10)
	mustNil(t, err, "read at the end")
	if len(page) != 0 {
		t.Fatalf("Messages(after the last) = %d messages, want none", len(page))
	}
	next := sampleMessage(5)
	mustNil(t, s.AppendMessage(ctx(), next, keep), "append while following")
	page, err = s.Messages(ctx(), last, 10)
	mustNil(t, err, "follow")
	if len(page) != 1 || page[0].Seq <= last || page[0].System.MessageID != "msg-5" {
		t.Fatalf("follow after %d = %+v, want msg-5 with a greater seq", last, page)
	}

	mustNil(t, s.AppendMessage(ctx(), sampleMessage(6), 1), "append with a smaller bound")
	all, err := s.Messages(ctx(), 0, 100)
	mustNil(t, err, "read after shrinking")
	if len(all) != 1 || all[0].System.MessageID != "msg-6" {
		t.Errorf("after keep=1 the log holds %d messages, want only msg-6", len(all))
	}
}
