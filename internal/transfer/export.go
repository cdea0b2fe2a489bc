package transfer

import (
	"bufio"
	"context"
	"io"

	"github.com/usher-iot/usher/internal/client"
)

// Export writes the records q selects on cl to w as JSON Lines, one page in
// memory at a time, and returns how many it wrote.
func Export(ctx context.Context, cl *client.Client, r *Retry, q Query, w io.Writer, p *Progress) (int, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	var s Summary // progress counts exported records as unchanged
	err := Scan(ctx, cl, r, q, Position{}, func(page Page) error {
		for i := range page.Records {
			line, err := page.Records[i].MarshalLine()
			if err != nil {
				return err
			}
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
		s.Unchanged += len(page.Records)
		p.update(&s, false)
		return nil
	})
	p.done()
	if err != nil {
		return s.Unchanged, err
	}
	return s.Unchanged, bw.Flush()
}
