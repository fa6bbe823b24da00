// Package offline keeps messages for accounts that have no available
// resource and delivers them, in order, at the account's next initial
// presence (XEP-0160), stamped with the time they arrived (XEP-0203).
package offline

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of this package.
const (
	NSDelay   = "urn:xmpp:delay"
	NSFeature = "msgoffline"
	// NSHints is Message Processing Hints (XEP-0334).
	NSHints = "urn:xmpp:hints"
)

// DefaultMax is the queue limit per account when Module.Max is zero.
const DefaultMax = 500

// DefaultMaxTotalBytes is the limit on all queues together when
// Module.MaxTotalBytes is zero: 1 GiB. Max alone bounds one account (500
// messages of up to the largest stanza, 256 KiB by default: 125 MiB), not
// the disk, since anyone may write to every offline account. 1 GiB is about
// a million messages of a typical size (1 KiB), and 4,096 of the largest.
const DefaultMaxTotalBytes = 1 << 30

// Module stores and delivers offline messages.
type Module struct {
	Store storage.Offline
	// Max bounds each account's queue; negative means no limit.
	Max int
	// MaxTotalBytes bounds the bytes of all accounts' queues together,
	// counted in the storage, so that every node sharing it counts what the
	// others stored; negative means no limit.
	MaxTotalBytes int64

	srv *xmpp.Server
	log *slog.Logger
	// full is set while the total limit refuses messages, so that the
	// operator hears of it once, not at every message.
	full atomic.Bool
	// limits are Max and MaxTotalBytes, which SetLimits changes
	// (limits.go).
	limits atomic.Pointer[storage.OfflineLimits]
}

// lock takes the server's lock on bare's queue: two sessions becoming
// available together must not both deliver the queue, and a message must
// not be stored just after the queue was delivered to a session that is
// now available; on this node or another.
func (m *Module) lock(ctx context.Context, bare string) (func(), error) {
	return m.srv.Lock(ctx, "offline:"+bare)
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.log = s.Log().With("module", "offline")
	if m.Max == 0 {
		m.Max = DefaultMax
	}
	if m.MaxTotalBytes == 0 {
		m.MaxTotalBytes = DefaultMaxTotalBytes
	}
	m.limits.Store(&storage.OfflineLimits{PerAccount: m.Max, TotalBytes: m.MaxTotalBytes})
	s.AddFeature(xmpp.ToServer, NSFeature)
	s.Hook(xmpp.Undeliverable, 0, func(ctx context.Context, ev *xmpp.StanzaEvent) bool {
		taken, err := m.store(ctx, ev.Stanza)
		if err != nil {
			var se xmpp.StanzaError
			if !errors.As(err, &se) {
				m.log.Warn("storing an offline message", "to", ev.To.String(), "err", err)
				se = errNotStored
			}
			ev.Bounce = &se
			return true
		}
		return taken
	})
	s.HookSession(xmpp.PresenceChanged, 0, func(ctx context.Context, s *xmpp.Session) {
		if now, _ := s.Available(); now && !s.WasAvailable() {
			m.deliver(ctx, s)
		}
	})
}

// errNotStored answers a message to an offline account that storage did
// not take (it is down, its disk is full or read-only): the sender learns
// that it was neither delivered nor kept, and may send it again later.
var errNotStored = xmpp.StanzaError{Type: xmpp.Wait, Condition: xmpp.InternalError,
	Text: "the recipient is offline and the server could not store the message: it was not delivered; try again later"}

// store keeps a chat or normal message (RFC 6121 §8.5.2.2.1). It returns
// once the message is durable, so that the sender's next stanza cannot
// overtake it.
func (m *Module) store(ctx context.Context, st *xmpp.Element) (bool, error) {
	switch st.Get("type") {
	case "", "normal", "chat":
	default:
		return false, nil // headlines are dropped, errors never bounce
	}
	if st.Child(xmpp.NSClient, "body") == nil && st.Child(xmpp.NSClient, "subject") == nil &&
		st.Child(NSHints, "store") == nil {
		// Chat states and receipts mean nothing later; drop them quietly
		// rather than bounce an error for each. A <store/> hint (XEP-0334
		// §4.4) asks for one to be kept all the same: the app's events
		// (the admin API) that are to wait for their recipient.
		return true, nil
	}
	to := st.Get("to")
	if i := strings.IndexByte(to, '/'); i >= 0 {
		to = to[:i]
	}
	unlock, err := m.lock(ctx, to)
	if err != nil {
		return false, err
	}
	if m.srv.Router().Reachable(to) {
		// A session became available after the router looked: the queue
		// was delivered already, so this message goes straight to it.
		unlock()
		m.srv.Router().Route(ctx, st, nil)
		return true, nil
	}
	defer unlock()
	el := st.ShallowCopy()
	el.Children = append(append([]xmpp.Node(nil), st.Children...),
		xmpp.NewElement(NSDelay, "delay", "from", m.srv.Domain, "stamp", time.Now().UTC().Format("2006-01-02T15:04:05.000Z")))
	// Limits of zero or less are none, for the storage as here.
	lim := *m.limits.Load()
	err = m.Store.StoreOffline(ctx, to, el.Bytes(xmpp.NSClient), lim)
	// A message that cannot be stored goes back to its sender, never
	// silently away: <service-unavailable/>, as XEP-0160 §2 (step 3) says
	// when the server cannot store for the recipient, and RFC 6121
	// §8.5.2.2.1 when it does not store.
	switch {
	case errors.Is(err, storage.ErrTotalLimit):
		if m.full.CompareAndSwap(false, true) {
			m.log.Warn("offline storage is full: messages to offline accounts bounce", "max_bytes", lim.TotalBytes)
		}
		return false, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable,
			Text: "the recipient is offline and the server's offline storage is full"}
	case errors.Is(err, storage.ErrLimit):
		return false, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable,
			Text: "the recipient is offline and their offline storage is full (" + strconv.Itoa(lim.PerAccount) + " messages)"}
	case err != nil:
		return false, err
	}
	if m.full.CompareAndSwap(true, false) {
		m.log.Info("offline storage has room again")
	}
	return true, nil
}

// deliver sends the queue to a session that just became available with a
// non-negative priority, in arrival order, then deletes what it sent.
func (m *Module) deliver(ctx context.Context, s *xmpp.Session) {
	if _, prio := s.Available(); prio < 0 {
		return
	}
	bare := s.JID().Bare().String()
	unlock, err := m.lock(ctx, bare)
	if err != nil {
		return
	}
	defer unlock()
	msgs, err := m.Store.OfflineMessages(ctx, bare)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("reading offline messages", "jid", bare, "err", err)
		}
		return
	}
	if len(msgs) == 0 {
		return
	}
	var last int64
	for _, msg := range msgs {
		el, err := xmpp.ParseStanza(msg.Data)
		if err != nil {
			m.log.Warn("stored offline message does not parse; dropped", "jid", bare, "id", msg.ID, "err", err)
			last = msg.ID
			continue
		}
		if !m.srv.Router().DeliverSession(ctx, s, el) {
			break
		}
		last = msg.ID
	}
	if last == 0 {
		return
	}
	// What was sent must go even when the server is stopping, or it would
	// come again.
	if err := m.Store.DeleteOffline(context.WithoutCancel(ctx), bare, last); err != nil {
		m.log.Warn("deleting offline messages", "jid", bare, "err", err)
	}
}
