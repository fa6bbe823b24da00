package sqlite

import (
	"context"
	"database/sql"
)

// SQLite has one writer at a time. Left to its busy handler, a burst of
// writers in this process (a shutdown hands every session's unacknowledged
// messages to offline storage at once) polls for the lock with growing
// sleeps, in no order, and those unlucky for busyTimeout fail with
// SQLITE_BUSY: a message refused, or lost where nobody can be told (issue
// 21). So the writers of one process take turns here, in order, for as
// long as their context allows; busy_timeout is left for other processes
// (xmppctl beside the server).

// writeTurn waits for this process's turn to write; release gives it back.
func (s *Store) writeTurn(ctx context.Context) (release func(), err error) {
	select {
	case s.writer <- struct{}{}:
		return func() { <-s.writer }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// writeTx is a write transaction that holds the turn until it commits or
// rolls back (whichever comes first; the deferred Rollback after a Commit
// does nothing).
type writeTx struct {
	*sql.Tx
	release func()
}

// begin starts a write transaction in this process's turn.
func (s *Store) begin(ctx context.Context) (*writeTx, error) {
	release, err := s.writeTurn(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		release()
		return nil, err
	}
	return &writeTx{Tx: tx, release: release}, nil
}

func (t *writeTx) done() {
	if t.release != nil {
		t.release()
		t.release = nil
	}
}

// Commit commits and gives the turn back.
func (t *writeTx) Commit() error {
	defer t.done()
	return t.Tx.Commit()
}

// Rollback rolls back, if the transaction is still open, and gives the
// turn back.
func (t *writeTx) Rollback() error {
	defer t.done()
	return t.Tx.Rollback()
}
