package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// pruneChunk is how many messages one transaction of PruneArchive or
// DeleteArchive removes. Each transaction holds the write lock, which every
// other writer (the server archiving messages, xmppctl) waits for for at
// most busyTimeout: removing a million messages at once would take longer.
const pruneChunk = 5000

// AppendArchive implements storage.Archive. The transaction takes the write
// lock at BEGIN (see Open) and synchronous=FULL makes its commit durable.
func (s *Store) AppendArchive(ctx context.Context, msgs ...storage.ArchivedMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		if m.ID == "" || m.Owner == "" {
			return fmt.Errorf("sqlite: append archive: message %q of %q: empty id or owner", m.ID, m.Owner)
		}
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: append archive: %w", err)
	}
	defer tx.Rollback()
	ins, err := s.stmts.get(ctx, `
		INSERT INTO archive_messages (id, owner, with_jid, at, data) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqlite: append archive: %w", err)
	}
	ins = tx.StmtContext(ctx, ins)
	defer ins.Close()
	for _, m := range msgs {
		data := m.Data
		if data == nil {
			data = []byte{} // NOT NULL
		}
		_, err := ins.ExecContext(ctx, m.ID, m.Owner, m.With, m.Time.UnixMicro(), data)
		if isUniqueViolation(err) {
			return fmt.Errorf("sqlite: append archive: id %s: %w", m.ID, storage.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("sqlite: append archive: id %s: %w", m.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append archive: %w", err)
	}
	return nil
}

// QueryArchive implements storage.Archive. It reads Max+1 messages, so that
// Complete is exact. The statement's text depends only on which filters are
// set, so the statement cache holds a few dozen at most; IDs go in as one
// JSON array for the same reason.
func (s *Store) QueryArchive(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	for _, id := range []string{q.AfterID, q.BeforeID} {
		if id == "" {
			continue
		}
		var one int
		err := s.queryRow(ctx, `SELECT 1 FROM archive_messages WHERE owner = ? AND id = ?`, owner, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ArchivePage{}, fmt.Errorf("sqlite: query archive of %s: id %s: %w", owner, id, storage.ErrNotFound)
		}
		if err != nil {
			return storage.ArchivePage{}, fmt.Errorf("sqlite: query archive of %s: %w", owner, err)
		}
	}

	// The page's rowids first, then its rows: a time window is a range of
	// (owner, at, id) sorted by id, and the inner query reads it from the
	// index alone (every index holds the rowid), so that only the Max+1
	// rows of the page are read from the table, not every row of the
	// window.
	var b strings.Builder
	b.WriteString(`SELECT id, with_jid, at, data FROM archive_messages WHERE rowid IN (
		SELECT rowid FROM archive_messages WHERE owner = ?`)
	args := []any{owner}
	if q.With != "" {
		b.WriteString(` AND with_jid = ?`)
		args = append(args, q.With)
	}
	if !q.Start.IsZero() {
		b.WriteString(` AND at >= ?`)
		args = append(args, ceilMicro(q.Start))
	}
	if !q.End.IsZero() {
		b.WriteString(` AND at <= ?`)
		args = append(args, q.End.UnixMicro())
	}
	if len(q.IDs) > 0 {
		ids, err := json.Marshal(q.IDs)
		if err != nil {
			return storage.ArchivePage{}, fmt.Errorf("sqlite: query archive of %s: %w", owner, err)
		}
		b.WriteString(` AND id IN (SELECT value FROM json_each(?))`)
		args = append(args, string(ids))
	}
	if q.AfterID != "" {
		b.WriteString(` AND id > ?`)
		args = append(args, q.AfterID)
	}
	if q.BeforeID != "" {
		b.WriteString(` AND id < ?`)
		args = append(args, q.BeforeID)
	}
	if q.Last {
		b.WriteString(` ORDER BY id DESC LIMIT ?) ORDER BY id DESC`)
	} else {
		b.WriteString(` ORDER BY id LIMIT ?) ORDER BY id`)
	}
	limit := int64(-1) // no limit
	if q.Max > 0 && q.Max < math.MaxInt {
		limit = int64(q.Max) + 1
	}
	args = append(args, limit)

	rows, err := s.query(ctx, b.String(), args...)
	if err != nil {
		return storage.ArchivePage{}, fmt.Errorf("sqlite: query archive of %s: %w", owner, err)
	}
	defer rows.Close()
	msgs := []storage.ArchivedMessage{}
	for rows.Next() {
		m := storage.ArchivedMessage{Owner: owner}
		var at int64
		if err := rows.Scan(&m.ID, &m.With, &at, &m.Data); err != nil {
			return storage.ArchivePage{}, fmt.Errorf("sqlite: query archive of %s: %w", owner, err)
		}
		m.Time = time.UnixMicro(at).UTC()
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return storage.ArchivePage{}, fmt.Errorf("sqlite: query archive of %s: %w", owner, err)
	}
	page := storage.ArchivePage{Messages: msgs, Complete: true}
	if limit > 0 && int64(len(msgs)) == limit {
		page.Messages, page.Complete = msgs[:len(msgs)-1], false
	}
	if q.Last {
		slices.Reverse(page.Messages)
	}
	return page, nil
}

// ceilMicro returns t in Unix microseconds, rounded up: a bound that keeps
// what is at or after t, since stored times are whole microseconds.
func ceilMicro(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// DeleteArchive implements storage.Archive, a chunk at a time (see
// pruneChunk).
func (s *Store) DeleteArchive(ctx context.Context, owner string) error {
	if _, err := s.deleteChunks(ctx, `DELETE FROM archive_messages WHERE rowid IN (
		SELECT rowid FROM archive_messages WHERE owner = ? LIMIT ?)`, owner); err != nil {
		return fmt.Errorf("sqlite: delete archive of %s: %w", owner, err)
	}
	return nil
}

// PruneArchive implements storage.Archive, a chunk at a time (see
// pruneChunk). Finding the archives over perOwner reads the whole
// (owner, id) index once.
func (s *Store) PruneArchive(ctx context.Context, before time.Time, perOwner int) (int64, error) {
	var removed int64
	if !before.IsZero() {
		n, err := s.deleteChunks(ctx, `DELETE FROM archive_messages WHERE rowid IN (
			SELECT rowid FROM archive_messages WHERE at < ? LIMIT ?)`, ceilMicro(before))
		removed += n
		if err != nil {
			return removed, fmt.Errorf("sqlite: prune archive: %w", err)
		}
	}
	if perOwner <= 0 {
		return removed, nil
	}
	rows, err := s.query(ctx,
		`SELECT owner FROM archive_messages GROUP BY owner HAVING count(*) > ?`, perOwner)
	if err != nil {
		return removed, fmt.Errorf("sqlite: prune archive: %w", err)
	}
	var owners []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			rows.Close()
			return removed, fmt.Errorf("sqlite: prune archive: %w", err)
		}
		owners = append(owners, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return removed, fmt.Errorf("sqlite: prune archive: %w", err)
	}
	for _, o := range owners {
		// The newest message to remove: perOwner newer ones stay.
		var cut string
		err := s.queryRow(ctx, `SELECT id FROM archive_messages WHERE owner = ?
			ORDER BY id DESC LIMIT 1 OFFSET ?`, o, perOwner).Scan(&cut)
		if errors.Is(err, sql.ErrNoRows) {
			continue // pruned meanwhile
		}
		if err != nil {
			return removed, fmt.Errorf("sqlite: prune archive of %s: %w", o, err)
		}
		n, err := s.deleteChunks(ctx, `DELETE FROM archive_messages WHERE rowid IN (
			SELECT rowid FROM archive_messages WHERE owner = ? AND id <= ? LIMIT ?)`, o, cut)
		removed += n
		if err != nil {
			return removed, fmt.Errorf("sqlite: prune archive of %s: %w", o, err)
		}
	}
	return removed, nil
}

// deleteChunks runs del, whose last parameter is the most rows it may
// delete, with pruneChunk until it deletes fewer, each in a transaction of
// its own, and returns how many rows it deleted.
func (s *Store) deleteChunks(ctx context.Context, del string, args ...any) (int64, error) {
	args = append(args, pruneChunk)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res, err := s.exec(ctx, del, args...)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// ArchivePrefs implements storage.Archive.
func (s *Store) ArchivePrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	var p storage.ArchivePrefs
	var always, never string
	err := s.queryRow(ctx, `SELECT default_mode, always, never FROM archive_prefs WHERE owner = ?`, owner).
		Scan(&p.Default, &always, &never)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ArchivePrefs{}, fmt.Errorf("sqlite: archive prefs of %s: %w", owner, storage.ErrNotFound)
	}
	if err != nil {
		return storage.ArchivePrefs{}, fmt.Errorf("sqlite: archive prefs of %s: %w", owner, err)
	}
	if err := json.Unmarshal([]byte(always), &p.Always); err != nil {
		return storage.ArchivePrefs{}, fmt.Errorf("sqlite: archive prefs of %s: always: %w", owner, err)
	}
	if err := json.Unmarshal([]byte(never), &p.Never); err != nil {
		return storage.ArchivePrefs{}, fmt.Errorf("sqlite: archive prefs of %s: never: %w", owner, err)
	}
	return p.Normal(), nil
}

// SetArchivePrefs implements storage.Archive.
func (s *Store) SetArchivePrefs(ctx context.Context, owner string, p storage.ArchivePrefs) error {
	p = p.Normal()
	always, err := json.Marshal(nonNil(p.Always))
	if err != nil {
		return fmt.Errorf("sqlite: set archive prefs of %s: %w", owner, err)
	}
	never, err := json.Marshal(nonNil(p.Never))
	if err != nil {
		return fmt.Errorf("sqlite: set archive prefs of %s: %w", owner, err)
	}
	if _, err := s.exec(ctx, `
		INSERT INTO archive_prefs (owner, default_mode, always, never) VALUES (?, ?, ?, ?)
		ON CONFLICT (owner) DO UPDATE SET
			default_mode = excluded.default_mode, always = excluded.always, never = excluded.never`,
		owner, p.Default, string(always), string(never)); err != nil {
		return fmt.Errorf("sqlite: set archive prefs of %s: %w", owner, err)
	}
	return nil
}

// nonNil returns s, or an empty slice for nil, which JSON encodes as null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
