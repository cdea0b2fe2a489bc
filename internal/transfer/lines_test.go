package transfer

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestLineReaderChunks(t *testing.T) {
	rec := func(kind Kind, id string) string {
		if kind == KindGroup {
			return fmt.Sprintf(`{"kind":"enrollmentGroup","enrollmentGroup":{"enrollmentGroupId":%q,"attestation":{"type":"symmetricKey"}}}`, id)
		}
		return fmt.Sprintf(`{"kind":"enrollment","enrollment":{"registrationId":%q,"attestation":{"type":"symmetricKey"}}}`, id)
	}
	input := strings.Join([]string{
		rec(KindEnrollment, "a"),
		"",
		rec(KindGroup, "a"),      // another kind: same chunk
		"oops",                   // a bad line: reported in place
		rec(KindEnrollment, "A"), // the same ID in another case: next chunk
		rec(KindEnrollment, "b") + "\r",
		"   ",
		rec(KindEnrollment, "c"), // no final newline
	}, "\n")
	lr := NewLineReader(strings.NewReader(input))
	var chunks [][]string
	for {
		items, err := lr.Next(3)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var c []string
		for _, it := range items {
			if it.Err != nil {
				c = append(c, fmt.Sprintf("%d:error", it.Line))
			} else {
				c = append(c, fmt.Sprintf("%d:%s/%s", it.Line, it.Rec.Kind, it.Rec.ID()))
			}
		}
		chunks = append(chunks, c)
	}
	got := fmt.Sprint(chunks)
	want := "[[1:enrollment/a 3:enrollmentGroup/a 4:error] [5:enrollment/A 6:enrollment/b 8:enrollment/c]]"
	if got != want {
		t.Errorf("chunks\n got %s\nwant %s", got, want)
	}
}

func TestLineReaderLongLine(t *testing.T) {
	long := `{"kind":"enrollment","x":"` + strings.Repeat("x", maxLine) + `"}`
	ok := `{"kind":"enrollment","enrollment":{"registrationId":"d","attestation":{"type":"symmetricKey"}}}`
	lr := NewLineReader(strings.NewReader(long + "\n" + ok + "\n"))
	items, err := lr.Next(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Err == nil || !strings.Contains(items[0].Err.Error(), "longer than") || items[1].Err != nil || items[1].Line != 2 {
		t.Fatalf("items = %+v, want line 1 too long and line 2 read", items)
	}
}
