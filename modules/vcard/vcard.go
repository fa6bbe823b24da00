package vcard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// NS is the namespace of XEP-0054, also its disco feature (§2).
const NS = "vcard-temp"

// Key is the storage.XMLDocs key of an account's vCard.
const Key = "vcard-temp"

// DefaultMaxBytes bounds a serialised vCard when Module.MaxBytes is zero:
// room for a small embedded photo, which is what older clients put there.
const DefaultMaxBytes = 64 << 10

// Module answers vCard requests to accounts.
type Module struct {
	// Store keeps the vCards.
	Store storage.XMLDocs
	// MaxBytes bounds one serialised vCard: zero selects DefaultMaxBytes,
	// a negative value means no limit (the stanza size limit still holds).
	MaxBytes int
	// Presence, when set, sends an account's presence again when its
	// avatar changes (SetAvatarHash); without it the next presence
	// carries the new hash.
	Presence Presence
	// Changed, when set, is called after a vCard is set (nil when it was
	// removed): the personal eventing service publishes its photo as the
	// XEP-0084 avatar (XEP-0398 §3.2).
	Changed func(ctx context.Context, owner string, card *xmpp.Element)

	srv *xmpp.Server
	log *slog.Logger
	// mu guards accounts: the avatar state of each account with sessions
	// here, by bare JID; sessions maps each session to its account's.
	mu       sync.Mutex
	accounts map[string]*account
	sessions sync.Map
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.log = s.Log().With("module", "vcard")
	m.accounts = make(map[string]*account)
	if m.MaxBytes == 0 {
		m.MaxBytes = DefaultMaxBytes
	}
	// Clients look for the feature on the server (§2) and on accounts.
	s.AddFeature(xmpp.ToServer, NS)
	s.AddFeature(xmpp.ToAccount, NS)
	s.HandleIQ(xmpp.ToAccount, "get", NS, "vCard", m.get)
	s.HandleIQ(xmpp.ToAccount, "set", NS, "vCard", m.set)
	// The avatar hash in presence (XEP-0153, as XEP-0398 §4 has the
	// server do it).
	s.HookSession(xmpp.SessionBound, 0, m.bound)
	// Before the roster says the session is gone, so that the account's
	// hash is forgotten by the time anyone hears of it.
	s.HookSession(xmpp.SessionEnded, Priority, m.ended)
	s.Hook(xmpp.PresenceOut, Priority, m.presenceOut)
	s.HandleClusterOp(opAvatar, m.avatarElsewhere)
}

// get returns the addressed account's vCard, to anyone (§3.1, §3.3), or an
// empty one when it has none (§3.1 allows either that or item-not-found;
// the empty one does not tell whether the account exists).
func (m *Module) get(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	owner := iq.To.Bare().String()
	data, err := m.Store.XMLDoc(ctx, owner, Key)
	if errors.Is(err, storage.ErrNotFound) {
		return xmpp.NewElement(NS, "vCard"), nil
	}
	if err != nil {
		return nil, err
	}
	card, err := xmpp.ParseElement(data)
	if err != nil {
		return nil, fmt.Errorf("vcard of %s: stored vCard: %w", owner, err)
	}
	return card, nil
}

// set replaces the sender's own vCard (§3.2); an empty <vCard/> removes
// it. Nobody sets another account's.
func (m *Module) set(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	if iq.Session == nil || !iq.Session.JID().Bare().Equal(iq.To.Bare()) {
		return nil, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "a vCard is set by its own account"}
	}
	owner := iq.To.Bare().String()
	if len(iq.Payload.Elements()) == 0 && strings.TrimSpace(iq.Payload.Text()) == "" {
		if err := m.Store.DeleteXMLDoc(ctx, owner, Key); err != nil {
			return nil, err
		}
		m.SetAvatarHash(ctx, owner, "")
		if m.Changed != nil {
			m.Changed(ctx, owner, nil)
		}
		return nil, nil
	}
	data := iq.Payload.Bytes("")
	// One key: the vCard needs no count limit.
	if err := m.Store.PutXMLDoc(ctx, owner, Key, data, storage.XMLDocLimits{MaxBytes: m.MaxBytes}); err != nil {
		if errors.Is(err, storage.ErrLimit) {
			return nil, xmpp.StanzaError{Condition: xmpp.NotAcceptable,
				Text: fmt.Sprintf("the vCard is %d bytes, more than the %d allowed", len(data), m.MaxBytes)}
		}
		return nil, err
	}
	// Contacts learn of a new photo from the hash in presence (XEP-0153
	// §3.1), which the client would otherwise send itself.
	m.SetAvatarHash(ctx, owner, PhotoHash(iq.Payload))
	if m.Changed != nil {
		m.Changed(ctx, owner, iq.Payload)
	}
	return nil, nil
}
