package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xmppd/xmppd/storage"
)

// AppendArchive implements storage.Archive: one statement for the whole
// batch (unnest of one array per column), so that it is atomic and, with
// the setting, one round trip. The statements of a batch share one implicit
// transaction, so the local synchronous_commit covers the insert: the
// commit is flushed before AppendArchive returns, whatever the server's
// default (as StoreOffline).
func (s *Store) AppendArchive(ctx context.Context, msgs ...storage.ArchivedMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	owners := make([]string, len(msgs))
	withs := make([]string, len(msgs))
	ats := make([]time.Time, len(msgs))
	datas := make([][]byte, len(msgs))
	for i, m := range msgs {
		if m.ID == "" || m.Owner == "" {
			return fmt.Errorf("postgres: append archive: message %q of %q: empty id or owner", m.ID, m.Owner)
		}
		ids[i], owners[i], withs[i], ats[i], datas[i] = m.ID, m.Owner, m.With, m.Time, m.Data
		if datas[i] == nil {
			datas[i] = []byte{} // NOT NULL; nil would be sent as NULL
		}
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('synchronous_commit', 'on', true)`)
	b.Queue(`INSERT INTO archive_messages (id, owner, with_jid, at, data)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[])`,
		ids, owners, withs, ats, datas)
	err := s.pool.SendBatch(ctx, b).Close()
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == uniqueViolation {
		return fmt.Errorf("postgres: append archive: %s: %w", pgErr.Detail, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: append archive: %w", err)
	}
	return nil
}

// QueryArchive implements storage.Archive. It reads Max+1 messages, so that
// Complete is exact, and checks AfterID and BeforeID in the same round trip.
// The statement's text depends only on which filters are set, so pgx's
// statement cache holds a few dozen at most.
func (s *Store) QueryArchive(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	b := &pgx.Batch{}
	var missing string
	for _, id := range []string{q.AfterID, q.BeforeID} {
		if id == "" {
			continue
		}
		b.Queue(`SELECT EXISTS (SELECT 1 FROM archive_messages WHERE owner = $1 AND id = $2)`, owner, id).
			QueryRow(func(r pgx.Row) error {
				var ok bool
				if err := r.Scan(&ok); err != nil {
					return err
				}
				if !ok && missing == "" {
					missing = id
				}
				return nil
			})
	}

	// A time window without a position is read from (owner, at, id) and
	// sorted: its ids, materialised, then the page's rows. Left to itself
	// the planner walks the id order instead and filters on at, expecting
	// the window's messages to be spread through the archive, when they are
	// together (ids and times grow together): a window in the middle of a
	// million messages took 0.4 s so, 5 ms this way. With a position the
	// walk from it is the right plan.
	window := (!q.Start.IsZero() || !q.End.IsZero()) && q.AfterID == "" && q.BeforeID == ""
	var sb strings.Builder
	if window {
		sb.WriteString(`WITH w AS MATERIALIZED (SELECT id FROM archive_messages WHERE owner = $1`)
	} else {
		sb.WriteString(`SELECT id, with_jid, at, data FROM archive_messages WHERE owner = $1`)
	}
	args := []any{owner}
	arg := func(cond string, v any) {
		args = append(args, v)
		sb.WriteString(cond)
		sb.WriteString(strconv.Itoa(len(args)))
	}
	if q.With != "" {
		arg(` AND with_jid = $`, q.With)
	}
	if !q.Start.IsZero() {
		arg(` AND at >= $`, ceilMicro(q.Start))
	}
	if !q.End.IsZero() {
		arg(` AND at <= $`, q.End)
	}
	if len(q.IDs) > 0 {
		arg(` AND id = ANY ($`, q.IDs)
		sb.WriteString(`::text[])`)
	}
	if q.AfterID != "" {
		arg(` AND id > $`, q.AfterID)
	}
	if q.BeforeID != "" {
		arg(` AND id < $`, q.BeforeID)
	}
	if window {
		sb.WriteString(`) SELECT id, with_jid, at, data FROM archive_messages WHERE id IN (SELECT id FROM w`)
	}
	order := ` ORDER BY id`
	if q.Last {
		order = ` ORDER BY id DESC`
	}
	sb.WriteString(order)
	limit := int64(-1) // no limit
	if q.Max > 0 && q.Max < math.MaxInt {
		limit = int64(q.Max) + 1
		arg(` LIMIT $`, limit)
	}
	if window {
		sb.WriteString(`)`)
		sb.WriteString(order)
	}

	var msgs []storage.ArchivedMessage
	b.Queue(sb.String(), args...).Query(func(rows pgx.Rows) error {
		var err error
		msgs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.ArchivedMessage, error) {
			m := storage.ArchivedMessage{Owner: owner}
			err := row.Scan(&m.ID, &m.With, &m.Time, &m.Data)
			m.Time = m.Time.UTC()
			return m, err
		})
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return storage.ArchivePage{}, fmt.Errorf("postgres: query archive of %s: %w", owner, err)
	}
	if missing != "" {
		return storage.ArchivePage{}, fmt.Errorf("postgres: query archive of %s: id %s: %w", owner, missing, storage.ErrNotFound)
	}
	if msgs == nil {
		msgs = []storage.ArchivedMessage{}
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

// ceilMicro returns t rounded up to the microsecond: a bound that keeps what
// is at or after t, since stored times are whole microseconds (pgx would
// round it down).
func ceilMicro(t time.Time) time.Time {
	u := t.Truncate(time.Microsecond)
	if u.Before(t) {
		u = u.Add(time.Microsecond)
	}
	return u
}

// DeleteArchive implements storage.Archive.
func (s *Store) DeleteArchive(ctx context.Context, owner string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM archive_messages WHERE owner = $1`, owner); err != nil {
		return fmt.Errorf("postgres: delete archive of %s: %w", owner, err)
	}
	return nil
}

// PruneArchive implements storage.Archive. Finding the archives over
// perOwner reads the whole table (or its (owner, id) index) once; each one's
// cut is then found once, in the materialised CTE: as a subquery in the
// join, the planner would evaluate it again for every row.
func (s *Store) PruneArchive(ctx context.Context, before time.Time, perOwner int) (int64, error) {
	var removed int64
	if !before.IsZero() {
		tag, err := s.pool.Exec(ctx, `DELETE FROM archive_messages WHERE at < $1`, ceilMicro(before))
		if err != nil {
			return 0, fmt.Errorf("postgres: prune archive: %w", err)
		}
		removed += tag.RowsAffected()
	}
	if perOwner > 0 {
		tag, err := s.pool.Exec(ctx, `
			WITH c AS MATERIALIZED (
				SELECT o.owner, (SELECT m.id FROM archive_messages m WHERE m.owner = o.owner
				                 ORDER BY m.id DESC OFFSET $1 LIMIT 1) AS cut
				FROM (SELECT owner FROM archive_messages GROUP BY owner HAVING count(*) > $1) o
			)
			DELETE FROM archive_messages a USING c
			WHERE a.owner = c.owner AND a.id <= c.cut`, perOwner)
		if err != nil {
			return removed, fmt.Errorf("postgres: prune archive: %w", err)
		}
		removed += tag.RowsAffected()
	}
	return removed, nil
}

// ArchivePrefs implements storage.Archive.
func (s *Store) ArchivePrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	var p storage.ArchivePrefs
	err := s.pool.QueryRow(ctx, `SELECT default_mode, always, never FROM archive_prefs WHERE owner = $1`, owner).
		Scan(&p.Default, &p.Always, &p.Never)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ArchivePrefs{}, fmt.Errorf("postgres: archive prefs of %s: %w", owner, storage.ErrNotFound)
	}
	if err != nil {
		return storage.ArchivePrefs{}, fmt.Errorf("postgres: archive prefs of %s: %w", owner, err)
	}
	return p.Normal(), nil
}

// SetArchivePrefs implements storage.Archive.
func (s *Store) SetArchivePrefs(ctx context.Context, owner string, p storage.ArchivePrefs) error {
	p = p.Normal()
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO archive_prefs (owner, default_mode, always, never) VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner) DO UPDATE SET
			default_mode = excluded.default_mode, always = excluded.always, never = excluded.never`,
		owner, p.Default, nonNil(p.Always), nonNil(p.Never)); err != nil {
		return fmt.Errorf("postgres: set archive prefs of %s: %w", owner, err)
	}
	return nil
}

// nonNil returns s, or an empty slice for nil, which pgx sends as NULL.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
