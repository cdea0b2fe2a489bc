package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/wire"
)

// Query says what Scan reads.
type Query struct {
	// Where is a query condition ("SELECT * FROM … WHERE <Where>"); "" for
	// every record. It applies to every kind read.
	Where string
	// Kinds to read, in Kinds order; all when empty.
	Kinds []Kind
	// Keys fetches each symmetric-key record's keys through its
	// attestationmechanism endpoint.
	Keys bool
	// PageSize is the x-ms-max-item-count asked for; 1000 when 0.
	PageSize int
	// Parallel is how many key requests are in flight; 8 when 0.
	Parallel int
}

// Position is where a scan starts: the first page of Kind that Token
// fetches ("" for the kind's first page). The zero Position is the start.
type Position struct {
	Kind  Kind   `json:"kind"`
	Token string `json:"token"`
}

// Page is one page of a scan.
type Page struct {
	Kind Kind
	// Token fetched this page ("" for the kind's first page); Next fetches
	// the next one ("" when this is the kind's last).
	Token, Next string
	// Rescanned is the source's refusal of a continuation token, set on
	// the first page of the kind read again from its start.
	Rescanned error
	Records   []Record
}

// Scan reads the service cl page by page from the position from, in Kinds
// order, and calls fn with each page, records normalised (no etags,
// timestamps or registration states; keys only with q.Keys). A record
// deleted between the query and its key request is left out. When the
// source refuses a continuation token (Azure's expire), the kind is read
// again from its start once, and its first page says so. Scan stops at fn's
// first error and returns it.
func Scan(ctx context.Context, cl *client.Client, r *Retry, q Query, from Position, fn func(Page) error) error {
	kinds := q.Kinds
	if len(kinds) == 0 {
		kinds = Kinds
	}
	size := q.PageSize
	if size <= 0 {
		size = 1000
	}
	started := from.Kind == ""
	for _, kind := range Kinds {
		if !contains(kinds, kind) {
			continue
		}
		token := ""
		if !started {
			if kind != from.Kind {
				continue
			}
			started, token = true, from.Token
		}
		var refused error // the refusal that restarted the kind
		for {
			page, err := fetchPage(ctx, cl, r, kind, q, size, token)
			if err != nil && token != "" && refusedToken(err) && refused == nil {
				token, refused = "", err
				continue
			}
			if err != nil {
				return err
			}
			if token == "" {
				page.Rescanned = refused
			}
			if q.Keys {
				if err := fillKeys(ctx, cl, r, &page, q.Parallel); err != nil {
					return err
				}
			}
			if err := fn(page); err != nil {
				return err
			}
			if page.Next == "" {
				break
			}
			if page.Next == token {
				return fmt.Errorf("query %s: the service answered the continuation token %q with itself; stopping rather than looping", kind, token)
			}
			token = page.Next
		}
	}
	return nil
}

func contains(kinds []Kind, k Kind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// refusedToken reports an answer that refuses a continuation token (Azure's
// tokens expire): a 4xx other than authentication and throttling.
func refusedToken(err error) bool {
	var e *client.APIError
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500 &&
		e.Status != http.StatusUnauthorized && e.Status != http.StatusForbidden && e.Status != http.StatusTooManyRequests
}

func queryText(kind Kind, where string) string {
	from := "enrollments"
	if kind == KindGroup {
		from = "enrollmentGroups"
	}
	q := "SELECT * FROM " + from
	if w := strings.TrimSpace(where); w != "" {
		q += " WHERE " + w
	}
	return q
}

func fetchPage(ctx context.Context, cl *client.Client, r *Retry, kind Kind, q Query, size int, token string) (Page, error) {
	text := queryText(kind, q.Where)
	var page Page
	var err error
	if kind == KindEnrollment {
		page, err = queryPage(ctx, r, func(ctx context.Context) ([]wire.IndividualEnrollment, string, error) {
			return cl.QueryEnrollments(ctx, text, size, token)
		}, EnrollmentRecord)
	} else {
		page, err = queryPage(ctx, r, func(ctx context.Context) ([]wire.EnrollmentGroup, string, error) {
			return cl.QueryGroups(ctx, text, size, token)
		}, GroupRecord)
	}
	if err != nil {
		return Page{}, fmt.Errorf("query %s: %w", kind, err)
	}
	page.Kind, page.Token = kind, token
	for i := range page.Records {
		page.Records[i].normalize(false)
	}
	return page, nil
}

// queryPage runs one query-page request of either kind with retries and
// turns its items into records.
func queryPage[T any](ctx context.Context, r *Retry, query func(context.Context) ([]T, string, error), record func(T) Record) (Page, error) {
	type result struct {
		items []T
		next  string
	}
	res, err := call(ctx, r, func(ctx context.Context) (result, error) {
		items, next, err := query(ctx)
		return result{items, next}, err
	})
	if err != nil {
		return Page{}, err
	}
	page := Page{Next: res.next, Records: make([]Record, 0, len(res.items))}
	for _, it := range res.items {
		page.Records = append(page.Records, record(it))
	}
	return page, nil
}

// fillKeys fetches the keys of the page's symmetric-key records, parallel
// requests at a time, and drops records that no longer exist.
func fillKeys(ctx context.Context, cl *client.Client, r *Retry, page *Page, parallel int) error {
	gone := make([]bool, len(page.Records))
	err := forEach(ctx, len(page.Records), parallel, func(ctx context.Context, i int) error {
		rec := &page.Records[i]
		if !rec.isSymmetric() {
			return nil
		}
		a, err := attestation(ctx, cl, r, rec.Kind, rec.ID())
		if isNotFound(err) {
			gone[i] = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("keys of %s %q: %w", rec.Kind, rec.ID(), err)
		}
		rec.settings().Attestation = &a
		return nil
	})
	if err != nil {
		return err
	}
	kept := page.Records[:0]
	for i, rec := range page.Records {
		if !gone[i] {
			kept = append(kept, rec)
		}
	}
	page.Records = kept
	return nil
}

func attestation(ctx context.Context, cl *client.Client, r *Retry, kind Kind, id string) (wire.AttestationMechanism, error) {
	return call(ctx, r, func(ctx context.Context) (wire.AttestationMechanism, error) {
		if kind == KindGroup {
			return cl.GroupAttestation(ctx, id)
		}
		return cl.EnrollmentAttestation(ctx, id)
	})
}

func isNotFound(err error) bool {
	var e *client.APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// forEach runs fn for 0…n-1 with at most parallel calls at once (8 when
// 0), and returns the first error; the others are cancelled by it.
func forEach(ctx context.Context, n, parallel int, fn func(context.Context, int) error) error {
	if parallel <= 0 {
		parallel = 8
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, parallel)
	)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}(i)
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return first
}
