// Package offline keeps messages for accounts that have no available
// resource and delivers them, in order, at the account's next initial
// presence (XEP-0160), stamped with the time they arrived (XEP-0203).
package offline

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of this package.
const (
	NSDelay   = "urn:xmpp:delay"
	NSFeature = "msgoffline"
)

// DefaultMax is the queue limit per account when Module.Max is zero.
const DefaultMax = 500

// Module stores and delivers offline messages.
type Module struct {
	Store storage.Offline
	// Max bounds each account's queue; negative means no limit.
	Max int

	srv *xmpp.Server
	log *slog.Logger
	// locks serialise storing and delivering per account: two sessions
	// becoming available together must not both deliver the queue, and a
	// message must not be stored just after the queue was delivered to a
	// session that is now available.
	seed  maphash.Seed
	locks [64]sync.Mutex
}

func (m *Module) lock(bare string) func() {
	mu := &m.locks[maphash.String(m.seed, bare)%uint64(len(m.locks))]
	mu.Lock()
	return mu.Unlock
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.seed = maphash.MakeSeed()
	m.log = slog.Default().With("module", "offline")
	if m.Max == 0 {
		m.Max = DefaultMax
	}
	s.AddFeature(xmpp.ToServer, NSFeature)
	s.OnUndeliverable(m.store)
	s.OnAvailable(m.deliver)
}

// store keeps a chat or normal message (RFC 6121 §8.5.2.2.1). It returns
// once the message is durable, so that the sender's next stanza cannot
// overtake it.
func (m *Module) store(ctx context.Context, st *xmpp.Element) (bool, error) {
	switch st.Get("type") {
	case "", "normal", "chat":
	default:
		return false, nil // headlines are dropped, errors never bounce
	}
	if st.Child(xmpp.NSClient, "body") == nil && st.Child(xmpp.NSClient, "subject") == nil {
		// Chat states and receipts mean nothing later; drop them quietly
		// rather than bounce an error for each.
		return true, nil
	}
	to := st.Get("to")
	if i := strings.IndexByte(to, '/'); i >= 0 {
		to = to[:i]
	}
	unlock := m.lock(to)
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
	err := m.Store.StoreOffline(ctx, to, el.Bytes(xmpp.NSClient), m.Max)
	if errors.Is(err, storage.ErrLimit) {
		return false, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable,
			Text: "the recipient is offline and their offline storage is full (" + strconv.Itoa(m.Max) + " messages)"}
	}
	if err != nil {
		return false, err
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
	defer m.lock(bare)()
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
		if !s.SendBytes(msg.Data) {
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
