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
	n := 0
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
		n += len(page.Records)
		p.count(n, false)
		return nil
	})
	p.done()
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}
