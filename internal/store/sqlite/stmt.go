package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps prepared statements so SQLite parses each query once per
// connection instead of on every call (parsing was a fifth of a
// registration's CPU). Queries are constants of this package.
type stmtCache struct {
	pool    *sql.DB
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// lookup returns the prepared statement for q, or nil after noting q to be
// prepared by the next preparePending.
func (c *stmtCache) lookup(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[q]; ok {
		return st
	}
	c.pending[q] = true
	return nil
}

// preparePending prepares the queries lookup has seen. The write pool has a
// single connection, so this runs before a transaction begins, never inside
// one. Failures leave the query unprepared; it then runs as plain text.
func (c *stmtCache) preparePending(ctx context.Context) {
	c.mu.Lock()
	var todo []string
	for q := range c.pending {
		todo = append(todo, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range todo {
		st, err := c.pool.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, ok := c.stmts[q]; ok {
			st.Close()
		} else {
			c.stmts[q] = st
		}
		c.mu.Unlock()
	}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	clear(c.stmts)
}

// reader runs read queries on the read pool with prepared statements,
// preparing each query the first time it is seen.
type reader struct{ c *stmtCache }

func (r reader) stmt(ctx context.Context, q string) *sql.Stmt {
	if st := r.c.lookup(q); st != nil {
		return st
	}
	r.c.preparePending(ctx)
	return r.c.lookup(q)
}

func (r reader) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := r.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return r.c.pool.QueryRowContext(ctx, q, args...)
}

func (r reader) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := r.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return r.c.pool.QueryContext(ctx, q, args...)
}

// wtx is a write transaction that uses the write pool's prepared statements
// when they exist. Its statements run to completion whatever their
// context: SQLite answers an interrupted write by rolling back the whole
// transaction, which is shared by a batch of callers (writer.go). A
// caller's context is checked before its work starts instead.
type wtx struct {
	tx *sql.Tx
	c  *stmtCache
}

func (w *wtx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	if st := w.c.lookup(q); st != nil {
		return w.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return w.tx.ExecContext(ctx, q, args...)
}

func (w *wtx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	ctx = context.WithoutCancel(ctx)
	if st := w.c.lookup(q); st != nil {
		return w.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return w.tx.QueryRowContext(ctx, q, args...)
}
