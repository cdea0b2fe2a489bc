package transfer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxLine is the longest line read: a record's body is at most 96 KiB on
// the service API, and a line adds its envelope.
const maxLine = 1 << 20

// LineReader reads a JSON Lines stream in chunks of items, each with its
// line number. Blank lines are skipped. A chunk never holds two records
// with the same kind and ID (case-insensitively, as the service compares
// them): the second starts the next chunk, so records of one ID are applied
// in file order.
type LineReader struct {
	r     *bufio.Reader
	line  int
	held  *Item // an item that starts the next chunk
	err   error
	Lines int // lines read so far
}

// NewLineReader reads r.
func NewLineReader(r io.Reader) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// Next returns up to n items; io.EOF when the stream is done, or the
// stream's read error.
func (lr *LineReader) Next(n int) ([]Item, error) {
	var items []Item
	keys := map[string]bool{}
	add := func(it Item) bool {
		if it.Err == nil {
			k := it.Rec.key()
			if keys[k] {
				lr.held = &it
				return false
			}
			keys[k] = true
		}
		items = append(items, it)
		return true
	}
	if lr.held != nil {
		it := *lr.held
		lr.held = nil
		add(it)
	}
	for len(items) < n && lr.err == nil {
		it, ok := lr.read()
		if !ok {
			continue
		}
		if !add(it) {
			break
		}
	}
	if len(items) == 0 && lr.err != nil {
		return nil, lr.err
	}
	return items, nil
}

// read reads one line; ok is false for a blank line or the end.
func (lr *LineReader) read() (Item, bool) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLine {
			tooLong = true
		} else {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			lr.err = err
			if len(buf) == 0 && !tooLong {
				return Item{}, false
			}
		}
		break
	}
	lr.line++
	lr.Lines = lr.line
	if tooLong {
		return Item{Line: lr.line, Err: fmt.Errorf("line is longer than %d bytes", maxLine)}, true
	}
	buf = bytes.TrimSpace(buf)
	if len(buf) == 0 {
		return Item{}, false
	}
	rec, err := ParseLine(buf)
	if err != nil {
		return Item{Line: lr.line, Err: err}, true
	}
	return Item{Line: lr.line, Rec: rec}, true
}
