package push

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// Namespaces and form types of this package.
const (
	NS = "urn:xmpp:push:0"
	// NSSummary is the FORM_TYPE of a notification's summary (§7).
	NSSummary = "urn:xmpp:push:summary"
	// NSPubSub wraps the publish (XEP-0060 §7.1).
	NSPubSub = "http://jabber.org/protocol/pubsub"
	// PublishOptions is the FORM_TYPE of the form a client enables push
	// with, which each notification carries (XEP-0060 §7.1.5).
	PublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
	// Payloads that make a message worth a notification without a body:
	// end-to-end encrypted messages (XEP-0384, the current and the legacy
	// namespace) and call invitations (XEP-0353).
	NSOMEMO       = "urn:xmpp:omemo:2"
	NSOMEMOLegacy = "eu.siacs.conversations.axolotl"
	NSJingleMsg   = "urn:xmpp:jingle-message:0"
)

// BodyField is the publish-options field by which a client asks for the
// message's body in its notifications (a boolean). XEP-0357 §11 warns that
// bodies go through third parties, so they are sent only to those who ask,
// and never when Module.NeverBody is set. The field is for this server, not
// for the app server: it is left out of the publish-options that go with
// the notifications. Its name starts with x- as XEP-0068 §3.4 wants of
// fields that a registered FORM_TYPE does not define.
const BodyField = "x-include-body"

// Defaults of the module's settings.
const (
	DefaultMaxRegistrations = 20
	DefaultTimeout          = 30 * time.Second
)

// Module is push notifications.
type Module struct {
	Store storage.Push
	// MaxRegistrations bounds the services one account may enable; zero
	// selects DefaultMaxRegistrations, a negative value means no limit.
	MaxRegistrations int
	// NeverBody keeps message bodies out of every notification, whatever
	// clients ask.
	NeverBody bool
	// Timeout is how long a notification waits for the app server's
	// answer; zero selects DefaultTimeout. A notification not answered in
	// time leaves the registration enabled.
	Timeout time.Duration

	srv *xmpp.Server
	log *slog.Logger
	// ctx ends at shutdown, and with it the notifications being sent; wg
	// waits for their goroutines.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// accounts are the accounts with messages waiting since their sessions
	// went away, by bare JID.
	accounts map[string]*account
	// told holds the sessions here that became available and told the
	// other nodes of a cluster to reset their counts (cluster.go).
	told sync.Map
}

// account is what an account's notifications summarise, and whether a
// notification is being sent.
type account struct {
	count      int
	lastSender string
	lastBody   string
	// sending is true while a goroutine publishes; more is set by a
	// message that arrives meanwhile, which the goroutine then publishes
	// too, with the count so far (XEP-0357 leaves coalescing to the server:
	// messages that arrive while the app server has not yet answered share
	// the next notification).
	sending, more bool
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.log = s.Log().With("module", "push")
	if m.MaxRegistrations == 0 {
		m.MaxRegistrations = DefaultMaxRegistrations
	}
	if m.Timeout <= 0 {
		m.Timeout = DefaultTimeout
	}
	m.accounts = make(map[string]*account)
	// §4.1: the feature is the account's.
	s.AddFeature(xmpp.ToAccount, NS)
	s.HandleIQ(xmpp.ToAccount, "set", NS, "enable", m.enable)
	s.HandleIQ(xmpp.ToAccount, "set", NS, "disable", m.disable)
	// Before offline storage (priority 0) takes the message; the hook
	// never handles it.
	s.Hook(xmpp.Undeliverable, 10, m.offline)
	s.Hook(xmpp.MessageIn, 0, m.hibernated)
	s.HookSession(xmpp.SessionResumed, 0, func(ctx context.Context, sess *xmpp.Session) {
		m.resetAll(ctx, sess, true)
	})
	s.HookSession(xmpp.PresenceChanged, 0, func(ctx context.Context, sess *xmpp.Session) {
		if ok, _ := sess.Available(); ok {
			m.resetAll(ctx, sess, false)
		} else {
			m.told.Delete(sess) // the next available presence tells the others again
		}
	})
	m.registerCluster(s)
	m.ctx, m.cancel = context.WithCancel(s.Context())
	s.OnShutdown(func() {
		m.cancel()
		m.wg.Wait()
	})
}

// enable answers <enable/> (§5): it adds or replaces the registration of a
// service JID and node, with the publish-options form's fields.
func (m *Module) enable(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	owner, err := own(iq)
	if err != nil {
		return nil, err
	}
	r, err := registration(iq.Payload)
	if err != nil {
		return nil, err
	}
	err = m.Store.PutPush(ctx, owner, r, m.MaxRegistrations)
	if errors.Is(err, storage.ErrLimit) {
		return nil, xmpp.StanzaError{Condition: xmpp.ResourceConstraintC,
			Text: "the account has enabled " + strconv.Itoa(m.MaxRegistrations) + " push services; disable one first"}
	}
	if err != nil {
		return nil, err
	}
	m.log.Debug("push enabled", "jid", owner, "service", r.JID)
	return nil, nil
}

// disable answers <disable/> (§6): without a node, every node of the JID.
// Disabling what is not enabled is not an error: what the client wanted is
// so.
func (m *Module) disable(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	owner, err := own(iq)
	if err != nil {
		return nil, err
	}
	service, err := serviceJID(iq.Payload)
	if err != nil {
		return nil, err
	}
	if _, err := m.Store.DeletePush(ctx, owner, service, iq.Payload.Get("node")); err != nil {
		return nil, err
	}
	return nil, nil
}

// own returns the account an <enable/> or <disable/> is for; only the
// account's own clients may send one (§5: to the user's bare JID).
func own(iq *xmpp.IQ) (string, error) {
	if iq.Session == nil || !iq.Session.JID().Bare().Equal(iq.To.Bare()) {
		return "", xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "push notifications are enabled by the account's own clients"}
	}
	return iq.To.Bare().String(), nil
}

func serviceJID(el *xmpp.Element) (string, error) {
	v := el.Get("jid")
	if v == "" {
		return "", xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "the jid attribute names the push service"}
	}
	j, err := jid.Parse(v)
	if err != nil {
		return "", xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "the jid attribute is not a JID"}
	}
	return j.String(), nil
}

// registration reads an <enable/>.
func registration(el *xmpp.Element) (storage.PushRegistration, error) {
	service, err := serviceJID(el)
	if err != nil {
		return storage.PushRegistration{}, err
	}
	r := storage.PushRegistration{JID: service, Node: el.Get("node")}
	if r.Node == "" {
		// §5 says SHOULD; every app server provisions a node, and without
		// one there is nothing to publish to.
		return r, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "the node attribute names the pubsub node to publish to"}
	}
	x := el.Child(form.NS, "x")
	if x == nil {
		return r, nil
	}
	fm, err := form.Parse(x)
	if err != nil {
		return r, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: err.Error()}
	}
	if fm.FormType != "" && fm.FormType != PublishOptions {
		return r, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "the form's FORM_TYPE is not " + PublishOptions}
	}
	for _, f := range fm.Fields {
		if f.Var == "" {
			return r, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "a publish-options field without a var"}
		}
		if f.Var == BodyField {
			if _, err := f.Bool(); err != nil {
				return r, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: BodyField + " is a boolean"}
			}
		}
		r.Fields = append(r.Fields, storage.PushField{Var: f.Var, Values: f.Values})
	}
	return r, nil
}

// wantsBody reports whether a registration asked for bodies.
func wantsBody(r storage.PushRegistration) bool {
	for _, f := range r.Fields {
		if f.Var == BodyField {
			v, _ := (&form.Field{Values: f.Values}).Bool()
			return v
		}
	}
	return false
}
