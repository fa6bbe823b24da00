package register

import (
	"context"
	"errors"
	"log/slog"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of XEP-0077.
const (
	NS        = "jabber:iq:register"
	NSFeature = "http://jabber.org/features/iq-register"
)

// Module is In-Band Registration.
type Module struct {
	// Store keeps the accounts (and their rosters, whose contacts learn of
	// a removal).
	Store Store
	// Iterations is the PBKDF2 iteration count of the credentials a new
	// password gets; zero selects the server's SCRAMIterations.
	Iterations int
	// Creation configures account creation before sign-in; the zero value
	// refuses it.
	Creation Creation
	// Invites keeps the invitations; needed when Creation.RequireInvite.
	Invites Invites

	srv     *xmpp.Server
	log     *slog.Logger
	created creations
}

// Store is what the module needs of storage.
type Store interface {
	storage.Users
	Roster(ctx context.Context, owner string) ([]storage.RosterItem, error)
}

// subscription is a subscription presence of type typ from the account
// to contact.
func subscription(from jid.JID, contact, typ string) *xmpp.Element {
	return xmpp.NewElement(xmpp.NSClient, "presence", "from", from.String(), "to", contact, "type", typ)
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.log = s.Log().With("module", "register")
	if m.Iterations == 0 {
		m.Iterations = s.SCRAMIterations
	}
	if m.Creation.PerAddress == 0 {
		m.Creation.PerAddress = DefaultPerAddress
	}
	if m.Creation.Window <= 0 {
		m.Creation.Window = DefaultWindow
	}
	if m.Creation.RequireInvite && m.Invites == nil {
		panic("register: Creation.RequireInvite without Invites")
	}
	s.AddFeature(xmpp.ToServer, NS)
	s.HandlePreAuthIQ(m.preAuth())
	s.HandleClusterOp(opEnd, m.endHere)
	if m.Creation.RequireInvite {
		s.Go(m.sweepInvites)
	}
	// A signed-in client addresses the server (§3.3) or sends no 'to'
	// (§3.2); both reach the same handlers.
	for _, target := range []xmpp.Target{xmpp.ToServer, xmpp.ToAccount} {
		s.HandleIQ(target, "get", NS, "query", m.get)
		s.HandleIQ(target, "set", NS, "query", m.set)
	}
}

// own returns the local session that sent iq when the IQ concerns that
// session's own account; an IQ addressed to another account is not ours to
// answer.
func own(iq *xmpp.IQ) (*xmpp.Session, error) {
	if iq.Session == nil {
		return nil, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable}
	}
	if iq.To.Localpart() != "" && !iq.To.Bare().Equal(iq.Session.JID().Bare()) {
		return nil, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable}
	}
	return iq.Session, nil
}

// get tells a signed-in user that it is registered, and as whom (§3.1,
// example 2).
func (m *Module) get(_ context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	s, err := own(iq)
	if err != nil {
		return nil, err
	}
	q := xmpp.NewElement(NS, "query")
	q.Add(xmpp.NewElement(NS, "registered"),
		xmpp.NewElement(NS, "username").Add(xmpp.Text(s.JID().Localpart())),
		xmpp.NewElement(NS, "password"))
	return q, nil
}

// set removes the account (§3.2) or changes its password (§3.3).
func (m *Module) set(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	s, err := own(iq)
	if err != nil {
		return nil, err
	}
	if iq.Payload.Child(NS, "remove") != nil {
		return m.remove(ctx, iq, s)
	}
	return m.passwd(ctx, iq, s)
}

// passwd replaces the account's credentials (§3.3), then ends the
// account's other sessions: they signed in with the old password, which
// may be why it changes. Those on other nodes of a cluster end too.
func (m *Module) passwd(ctx context.Context, iq *xmpp.IQ, s *xmpp.Session) (*xmpp.Element, error) {
	user, pw := iq.Payload.Child(NS, "username"), iq.Payload.Child(NS, "password")
	if user == nil || pw == nil || pw.Text() == "" {
		return nil, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "a password change needs <username/> and a non-empty <password/>"}
	}
	bare := s.JID().Bare()
	if user.Text() != bare.Localpart() {
		return nil, xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "only the signed-in account's password can change"}
	}
	creds, err := xmpp.NewCredentials(pw.Text(), m.Iterations)
	if err != nil {
		return nil, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "the password is not acceptable: " + err.Error()}
	}
	if err := m.Store.SetCredentials(ctx, bare.String(), creds); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			// Signed in with an app token: there is no password to change.
			return nil, xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "this account has no password stored here"}
		}
		return nil, err
	}
	const why = "the account's password changed"
	n := m.srv.EndSessions(bare, xmpp.StreamError{Condition: xmpp.NotAuthorized, Text: why}, s)
	m.endElsewhere(ctx, bare, why)
	m.log.Info("password changed in band", "jid", bare.String(), "sessions_ended", n)
	return nil, nil
}

// remove deletes the account and everything stored for it (§3.2), answers,
// then ends every session of the account with <not-authorized/>, this one
// too once the answer is on its way.
func (m *Module) remove(ctx context.Context, iq *xmpp.IQ, s *xmpp.Session) (*xmpp.Element, error) {
	bare := s.JID().Bare()
	// The contacts learn that the subscriptions are gone (RFC 6121 §3.2,
	// §3.3), as when the items are removed one by one (§2.5.3), so that
	// whoever registers the name next inherits none of them.
	items, err := m.Store.Roster(ctx, bare.String())
	if err != nil {
		return nil, err
	}
	if err := m.Store.DeleteUser(ctx, bare.String()); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, xmpp.StanzaError{Condition: xmpp.RegistrationRequired, Text: "this account is not registered here"}
		}
		return nil, err
	}
	m.srv.AccountRemoved(ctx, bare)
	for _, it := range items {
		if it.Ask || it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth {
			m.srv.Router().Route(ctx, subscription(bare, it.Contact, "unsubscribe"), nil)
		}
		if it.PendingIn || it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth {
			m.srv.Router().Route(ctx, subscription(bare, it.Contact, "unsubscribed"), nil)
		}
	}
	reply := xmpp.ResultReply(iq.Element, nil)
	if iq.Get("to") == "" {
		reply.Set("from", bare.String())
	}
	m.srv.Router().DeliverSession(ctx, s, reply)
	const why = "the account was removed"
	// First the other nodes: ending this session may end ctx.
	m.endElsewhere(context.WithoutCancel(ctx), bare, why)
	n := m.srv.EndSessions(bare, xmpp.StreamError{Condition: xmpp.NotAuthorized, Text: why}, nil)
	m.log.Info("account removed in band", "jid", bare.String(), "sessions_ended", n)
	// The answer is queued; the one the core would send now finds the
	// session closed and goes nowhere.
	return nil, nil
}
