package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/xmppd/xmppd/storage"
)

// StoreOffline implements storage.Offline. The transaction takes the write
// lock at BEGIN (see Open), so no other writer, in this process or another,
// can add to any queue between the counts and the insert: both limits are
// exact. synchronous=FULL makes the commit durable.
//
// Messages stored at the same time share a transaction (group commit): the
// caller whose turn to write comes stores every message waiting then, in
// one commit, and each caller returns once its own is durable. One commit
// (one fsync) per message was what bounded a shutdown, when every
// session hands its unacknowledged messages to offline storage at once.
func (s *Store) StoreOffline(ctx context.Context, owner string, data []byte, lim storage.OfflineLimits) error {
	if data == nil {
		data = []byte{} // NOT NULL
	}
	req := &offlineReq{owner: owner, data: data, lim: lim, done: make(chan error, 1)}
	s.offline.mu.Lock()
	s.offline.pending = append(s.offline.pending, req)
	s.offline.mu.Unlock()
	// Whichever comes first: this message stored in another caller's
	// batch, or the turn to store what waits. A caller whose message went
	// in another's batch does not queue for the turn: a queue of those
	// would hand the turn on to batches of one or two.
	var release func()
	var err error
	select {
	case err := <-req.done:
		return err
	case s.writer <- struct{}{}:
		release = func() { <-s.writer }
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.offline.mu.Lock()
		for i, r := range s.offline.pending {
			if r == req {
				s.offline.pending = append(s.offline.pending[:i:i], s.offline.pending[i+1:]...)
				s.offline.mu.Unlock()
				return fmt.Errorf("sqlite: store offline for %s: %w", owner, err)
			}
		}
		s.offline.mu.Unlock()
		// Taken by the writer of a batch, which holds the turn: its
		// answer comes.
		return <-req.done
	}
	s.offline.mu.Lock()
	batch := s.offline.pending
	s.offline.pending = nil
	s.offline.mu.Unlock()
	if len(batch) > 0 {
		// Not cut short by this caller's context: the batch is others' too.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*busyTimeout)
		s.storeOfflineBatch(bctx, batch)
		cancel()
	}
	release()
	return <-req.done
}

// offlineReq is a message waiting to be stored (StoreOffline).
type offlineReq struct {
	owner string
	data  []byte
	lim   storage.OfflineLimits
	done  chan error
}

// offlineBatch is what waits for the next turn to write.
type offlineBatch struct {
	mu      sync.Mutex
	pending []*offlineReq
}

// storeOfflineBatch stores batch in one transaction, in the turn to write,
// and answers each request: its limit's error, or the transaction's.
func (s *Store) storeOfflineBatch(ctx context.Context, batch []*offlineReq) {
	errs := make([]error, len(batch))
	err := func() error {
		tx, err := s.db.BeginTx(ctx, nil) // the caller holds the turn
		if err != nil {
			return err
		}
		defer tx.Rollback()
		// Each statement prepared once for the batch, from the cache.
		var q [2]*sql.Stmt
		for i, text := range []string{offlineCountSQL, offlineInsertSQL} {
			st, err := s.stmts.get(ctx, text)
			if err != nil {
				return err
			}
			q[i] = tx.StmtContext(ctx, st)
		}
		for i, r := range batch {
			errs[i] = storeOfflineIn(ctx, q[0], q[1], r)
			if errs[i] != nil && !errors.Is(errs[i], storage.ErrLimit) && !errors.Is(errs[i], storage.ErrTotalLimit) {
				return errs[i]
			}
		}
		return tx.Commit()
	}()
	for i, r := range batch {
		switch {
		case err != nil:
			r.done <- fmt.Errorf("sqlite: store offline for %s: %w", r.owner, err)
		case errs[i] != nil:
			r.done <- errs[i]
		default:
			r.done <- nil
		}
	}
}

// The statements of storeOfflineIn. offline_usage is kept by triggers
// (migration 0006).
const (
	offlineCountSQL = `SELECT
			(SELECT count(*) FROM offline_messages WHERE owner = ?),
			(SELECT bytes FROM offline_usage)`
	offlineInsertSQL = `INSERT INTO offline_messages (owner, data) VALUES (?, ?)`
)

// storeOfflineIn checks r's limits (count) and inserts it (insert), in a
// transaction.
func storeOfflineIn(ctx context.Context, count, insert *sql.Stmt, r *offlineReq) error {
	owner, lim := r.owner, r.lim
	if lim.PerAccount > 0 || lim.TotalBytes > 0 {
		var n int
		var used int64
		if err := count.QueryRowContext(ctx, owner).Scan(&n, &used); err != nil {
			return err
		}
		if lim.PerAccount > 0 && n >= lim.PerAccount {
			return fmt.Errorf("sqlite: store offline for %s: %d messages: %w", owner, n, storage.ErrLimit)
		}
		if lim.TotalBytes > 0 && used+int64(len(r.data)) > lim.TotalBytes {
			return fmt.Errorf("sqlite: store offline for %s: %d bytes stored: %w", owner, used, storage.ErrTotalLimit)
		}
	}
	_, err := insert.ExecContext(ctx, owner, r.data)
	return err
}

// OfflineMessages implements storage.Offline.
func (s *Store) OfflineMessages(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	rows, err := s.query(ctx,
		`SELECT id, data FROM offline_messages WHERE owner = ? ORDER BY id`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: offline messages of %s: %w", owner, err)
	}
	defer rows.Close()
	msgs := []storage.OfflineMessage{}
	for rows.Next() {
		var m storage.OfflineMessage
		if err := rows.Scan(&m.ID, &m.Data); err != nil {
			return nil, fmt.Errorf("sqlite: offline messages of %s: %w", owner, err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: offline messages of %s: %w", owner, err)
	}
	return msgs, nil
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, owner string, upTo int64) error {
	if _, err := s.exec(ctx,
		`DELETE FROM offline_messages WHERE owner = ? AND id <= ?`, owner, upTo); err != nil {
		return fmt.Errorf("sqlite: delete offline of %s: %w", owner, err)
	}
	return nil
}

// OfflineUsage implements storage.Offline.
func (s *Store) OfflineUsage(ctx context.Context) (storage.OfflineUsage, error) {
	var u storage.OfflineUsage
	if err := s.queryRow(ctx, `SELECT messages, bytes FROM offline_usage`).Scan(&u.Messages, &u.Bytes); err != nil {
		return storage.OfflineUsage{}, fmt.Errorf("sqlite: offline usage: %w", err)
	}
	return u, nil
}
