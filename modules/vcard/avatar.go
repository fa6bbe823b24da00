package vcard

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// NSUpdate is the namespace of the avatar hash in presence (XEP-0153 §3.1).
const NSUpdate = "vcard-temp:x:update"

// Priority is the module's PresenceOut hook's: before the roster's (0),
// which broadcasts the presence as the hook leaves it.
const Priority = 20

// Presence is what the module needs of the presence handler (roster.Module)
// to send an account's presence again when its avatar changes.
type Presence interface {
	Rebroadcast(ctx context.Context, s *xmpp.Session, change func(p *xmpp.Element) *xmpp.Element)
}

// XEP-0398 §4 has the server, not the clients, put the hash of the
// account's avatar in its available presence, so that a client need not
// download its own vCard at each sign-in to compute it, and contacts see
// the avatar whichever client is online. The hash is kept in memory while
// the account has sessions here, read from the stored vCard when its first
// session binds (one storage read per sign-in of an account not yet
// online here); a presence costs one map lookup, and nothing more when the
// client already put the right hash in it.

// account is an account's avatar state while it has sessions here.
type account struct {
	owner jid.JID
	// avatar is nil until loaded; it is replaced, never changed.
	avatar atomic.Pointer[avatar]
	// mu serialises loading and changes of avatar, and guards sessions.
	mu       sync.Mutex
	sessions int
	// loading is set while a read of the hash runs; missed once a
	// presence went out without the hash because it was not read yet.
	loading, missed atomic.Bool
}

// avatar is an account's avatar hash and the element that carries it in
// presence, shared by every presence stamped with it and never changed.
type avatar struct {
	hash string // hex SHA-1 of the image; "" for no avatar
	x    *xmpp.Element
}

func newAvatar(hash string) *avatar {
	photo := xmpp.NewElement(NSUpdate, "photo")
	if hash != "" {
		photo.Add(xmpp.Text(hash))
	}
	return &avatar{hash: hash, x: xmpp.NewElement(NSUpdate, "x").Add(photo)}
}

// PhotoHash is the avatar hash of a vCard (XEP-0153 §3.1): the hex SHA-1 of
// its PHOTO's BINVAL, decoded (whitespace in it ignored, §4.5); "" when it
// has no photo there, or one that is not base64.
func PhotoHash(card *xmpp.Element) string {
	photo := card.Child(NS, "PHOTO")
	if photo == nil {
		return ""
	}
	bin := photo.Child(NS, "BINVAL")
	if bin == nil {
		return ""
	}
	b64 := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, bin.Text())
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if data, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return ""
		}
	}
	if len(data) == 0 {
		return ""
	}
	sum := sha1.Sum(data)
	return hex.EncodeToString(sum[:])
}

// bound and ended keep an entry for each account with sessions here; the
// entry, and the hash with it, goes with the account's last session.
func (m *Module) bound(ctx context.Context, s *xmpp.Session) {
	owner := s.JID().Bare()
	key := owner.String()
	m.mu.Lock()
	a := m.accounts[key]
	if a == nil {
		a = &account{owner: owner}
		m.accounts[key] = a
	}
	a.mu.Lock()
	a.sessions++
	first := a.sessions == 1
	a.mu.Unlock()
	m.mu.Unlock()
	m.sessions.Store(s, a)
	if first && a.avatar.Load() == nil {
		// Read the hash now, before anything the client sent is read,
		// not when its presence comes: a storage read in the presence
		// hook holds the presence between the session turning available
		// and the roster announcing it, where a colleague signing in at
		// the same moment then gets it twice (1,365 repeated presences
		// in a team of 200 signing in 50 at a time, none without).
		m.load(ctx, a)
	}
}

// prefetch reads the account's hash in the background, when the read at
// bind failed and a presence went without it; the presence never waits
// for it, and is sent again with the hash once read, when there is one.
func (m *Module) prefetch(a *account) {
	if !a.loading.CompareAndSwap(false, true) {
		return
	}
	m.srv.Go(func(ctx context.Context) {
		av := m.load(ctx, a)
		a.loading.Store(false)
		if av == nil || av.hash == "" || !a.missed.Load() {
			return
		}
		m.resend(ctx, a, nil, av)
	})
}

func (m *Module) ended(_ context.Context, s *xmpp.Session) {
	v, ok := m.sessions.LoadAndDelete(s)
	if !ok {
		return
	}
	a := v.(*account)
	m.mu.Lock()
	defer m.mu.Unlock()
	a.mu.Lock()
	a.sessions--
	gone := a.sessions <= 0
	a.mu.Unlock()
	if gone && m.accounts[a.owner.String()] == a {
		delete(m.accounts, a.owner.String())
	}
}

// presenceOut puts the account's avatar hash in available presence from
// its clients, broadcast or directed (XEP-0398 §4: directed presence such
// as joining a chat room gets it too). It never handles the stanza.
func (m *Module) presenceOut(ctx context.Context, ev *xmpp.StanzaEvent) bool {
	p := ev.Stanza
	if p.Get("type") != "" {
		return false
	}
	v, ok := m.sessions.Load(ev.Session)
	if !ok {
		return false
	}
	a := v.(*account)
	av := a.avatar.Load()
	if av == nil {
		a.missed.Store(true)
		// Loaded meanwhile? Then this presence carries it; if not,
		// prefetch sends it again (it looks at missed after storing).
		if av = a.avatar.Load(); av == nil {
			m.prefetch(a)
			return false
		}
	}
	i, keep := update(p, av.hash)
	switch {
	case keep:
	case i >= 0:
		// The client's stanza is the server's to change now.
		p.Children[i] = av.x
	default:
		p.Children = append(p.Children, av.x)
	}
	return false
}

// update finds p's update element (the first): its index among
// p.Children, -1 when there is none. keep says that p stays as it is:
// it carries the hash already, or the client's empty <photo/>, which says
// it advertises no avatar and XEP-0398 §4 leaves alone. Any other
// update element is replaced: one without <photo/> (XEP-0153 §4.1 "not
// ready"), which §4 says to overwrite, and one with another hash, which it
// allows to.
func update(p *xmpp.Element, hash string) (i int, keep bool) {
	for i, n := range p.Children {
		x, ok := n.(*xmpp.Element)
		if !ok || x.Space != NSUpdate || x.Local != "x" {
			continue
		}
		photo := x.Child(NSUpdate, "photo")
		if photo == nil {
			return i, false
		}
		t, plain := text(photo)
		if !plain {
			return i, false
		}
		return i, t == "" || t == hash
	}
	return -1, false
}

// text is e's character data without surrounding space when e holds
// nothing else, read without copying; false when e holds more than one
// piece of text or an element.
func text(e *xmpp.Element) (string, bool) {
	switch len(e.Children) {
	case 0:
		return "", true
	case 1:
		t, ok := e.Children[0].(xmpp.Text)
		return strings.TrimSpace(string(t)), ok
	}
	return "", false
}

// load reads the account's avatar hash from its stored vCard, once: nil
// when storage fails (the presence then goes as the client sent it, and
// the next one tries again).
func (m *Module) load(ctx context.Context, a *account) *avatar {
	a.mu.Lock()
	defer a.mu.Unlock()
	if av := a.avatar.Load(); av != nil {
		return av
	}
	owner := a.owner.String()
	hash := ""
	data, err := m.Store.XMLDoc(ctx, owner, Key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		m.log.Warn("reading the vCard for the avatar hash", "jid", owner, "err", err)
		return nil
	default:
		card, err := xmpp.ParseElement(data)
		if err != nil {
			m.log.Warn("stored vCard", "jid", owner, "err", err)
			return nil
		}
		hash = PhotoHash(card)
	}
	av := newAvatar(hash)
	a.avatar.Store(av)
	return av
}

// SetAvatarHash makes hash the avatar hash that the available presence of
// owner (a bare JID) carries from now on, and sends the current presence
// of owner's available sessions here again with it, so that contacts see
// the change (XEP-0153 §3.1); in a cluster, every other node does the same
// for its sessions of owner. hash is the hex SHA-1 of the image, "" for
// no avatar. The vCard module calls it when a vCard is set; a conversion
// of XEP-0084 avatars to vCard ones (XEP-0398 §3.1) calls it after storing
// the photo in the vCard, which is where the hash is read from when owner
// signs in again. Without a session of owner here, it does nothing here.
func (m *Module) SetAvatarHash(ctx context.Context, owner, hash string) {
	hash = strings.ToLower(hash)
	if hash != "" {
		if b, err := hex.DecodeString(hash); err != nil || len(b) != sha1.Size {
			m.log.Warn("not a SHA-1 avatar hash", "jid", owner, "hash", hash)
			return
		}
	}
	m.tellNodes(ctx, owner, hash)
	m.setHere(ctx, owner, hash)
}

// setHere is SetAvatarHash for this node's sessions only.
func (m *Module) setHere(ctx context.Context, owner, hash string) {
	if a, old, av := m.swap(owner, hash); av != nil {
		m.resend(ctx, a, old, av)
	}
}

// swap makes hash owner's avatar hash here; av is nil when owner has no
// session here or the hash is the same.
func (m *Module) swap(owner, hash string) (a *account, old, av *avatar) {
	m.mu.Lock()
	a = m.accounts[owner]
	m.mu.Unlock()
	if a == nil {
		return nil, nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old = a.avatar.Load()
	if old != nil && old.hash == hash {
		return nil, nil, nil
	}
	av = newAvatar(hash)
	a.avatar.Store(av)
	return a, old, av
}

// resend sends the current presence of a's available sessions here again
// with av's hash, replacing old's (nil: none was put in).
func (m *Module) resend(ctx context.Context, a *account, old, av *avatar) {
	if m.Presence == nil {
		return // the next presence carries it
	}
	for _, s := range m.srv.SessionsOf(a.owner) {
		m.Presence.Rebroadcast(ctx, s, func(p *xmpp.Element) *xmpp.Element {
			i, keep := update(p, av.hash)
			// An empty <photo/> the server put there is not the
			// client's to keep.
			if keep && (old == nil || i < 0 || p.Children[i] != old.x) {
				return nil
			}
			// p shares its children with what was sent: new ones.
			kids := make([]xmpp.Node, len(p.Children), len(p.Children)+1)
			copy(kids, p.Children)
			if i >= 0 {
				kids[i] = av.x
			} else {
				kids = append(kids, av.x)
			}
			p.Children = kids
			return p
		})
	}
}

// opAvatar tells another node of an account's new avatar hash:
// <vcard-avatar owner="bare" hash="hex"/> ("" for none).
const opAvatar = "vcard-avatar"

// tellNodes gives owner's new hash to the other nodes of a cluster: the
// hash each keeps while owner has sessions there would otherwise stay as
// it was until their next sign-in (and their presence with it).
func (m *Module) tellNodes(ctx context.Context, owner, hash string) {
	if !m.srv.Clustered() || xmpp.FromBus(ctx) {
		return
	}
	m.srv.SendClusterOpAll(ctx, xmpp.NewElement(xmpp.NSCluster, opAvatar, "owner", owner, "hash", hash))
}

// avatarElsewhere is another node's SetAvatarHash: the hash changes here
// at once, in the order the changes came; the presence of the account's
// sessions here goes again out of the bus's goroutine, with a context of
// this node's own, so that it reaches contacts on every node.
func (m *Module) avatarElsewhere(_ context.Context, op *xmpp.Element) {
	owner, hash := op.Get("owner"), strings.ToLower(op.Get("hash"))
	if hash != "" {
		if b, err := hex.DecodeString(hash); err != nil || len(b) != sha1.Size {
			return
		}
	}
	if a, old, av := m.swap(owner, hash); av != nil {
		m.srv.Go(func(ctx context.Context) { m.resend(ctx, a, old, av) })
	}
}
