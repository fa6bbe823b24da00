package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xmppd/xmppd/storage"
)

// notifyChannel is the channel the triggers of migration 0004 NOTIFY on.
const notifyChannel = "xmppd_groups"

// A watch's connection is idle while nothing changes; after
// defaultHealthInterval of silence it pings the server, so that a connection
// that died without a word (a network partition) is noticed and replaced.
const (
	defaultHealthInterval = 30 * time.Second
	pingTimeout           = 10 * time.Second
	minBackoff            = 100 * time.Millisecond
	maxBackoff            = 10 * time.Second
)

// notice is the payload the triggers send.
type notice struct {
	Schema string `json:"schema"`
	Group  string `json:"group"`
	JID    string `json:"jid"`
}

// WatchGroups implements storage.Groups. Triggers on groups and
// group_members NOTIFY every change, whoever makes it; the watch LISTENs on
// a connection of its own (not one of the pool's), established before
// WatchGroups returns. NOTIFY is database-wide, so notices from other
// schemas are ignored. If the connection is lost the watch reconnects, with
// backoff, and then reports GroupChange{} (resynchronise), since notices sent
// meanwhile are lost. The watch also ends when the store is closed.
func (s *Store) WatchGroups(ctx context.Context) (<-chan storage.GroupChange, error) {
	conn, schema, err := s.listen(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: watch groups: %w", err)
	}
	return s.watches.Start(ctx, func(ctx context.Context, send func(storage.GroupChange) bool) {
		s.watch(ctx, conn, schema, send)
	}), nil
}

// listen opens a connection with the pool's settings and LISTENs on it. It
// returns the connection and its current schema: the schema xmppd's tables
// are in.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, string, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, "", err
	}
	var schema string
	if _, err = conn.Exec(ctx, "LISTEN "+notifyChannel); err == nil {
		err = conn.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&schema)
	}
	if err != nil {
		closeConn(conn)
		return nil, "", err
	}
	if s.onListen != nil {
		s.onListen(conn.PgConn().PID())
	}
	return conn, schema, nil
}

func (s *Store) watch(ctx context.Context, conn *pgx.Conn, schema string, send func(storage.GroupChange) bool) {
	defer func() { closeConn(conn) }()
	for {
		n, err := s.wait(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			closeConn(conn)
			if conn, schema = s.relisten(ctx); conn == nil {
				return
			}
			if !send(storage.GroupChange{}) {
				return
			}
			continue
		}
		if n == nil {
			continue
		}
		var p notice
		if json.Unmarshal([]byte(n.Payload), &p) != nil || p.Schema != schema {
			continue
		}
		if !send(storage.GroupChange{Group: p.Group, JID: p.JID}) {
			return
		}
	}
}

// wait returns the next notification, or nil after s.healthInterval of
// silence if the server still answers a ping.
func (s *Store) wait(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	waitCtx, cancel := context.WithTimeout(ctx, s.healthInterval)
	n, err := conn.WaitForNotification(waitCtx)
	cancel()
	if err == nil || !pgconn.Timeout(err) || ctx.Err() != nil {
		return n, err
	}
	// Silence; a timeout leaves the connection usable (pgx's default
	// context watcher sets a deadline rather than closing it).
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return nil, conn.Ping(pingCtx)
}

// relisten reconnects, doubling the wait between attempts up to maxBackoff,
// until it succeeds (the new connection and schema) or ctx ends (nil).
func (s *Store) relisten(ctx context.Context) (*pgx.Conn, string) {
	backoff := minBackoff
	for {
		select {
		case <-ctx.Done():
			return nil, ""
		case <-time.After(backoff):
		}
		conn, schema, err := s.listen(ctx)
		if err == nil {
			return conn, schema
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// closeConn closes conn, if any, without waiting long for a server that may
// be gone.
func closeConn(conn *pgx.Conn) {
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}
