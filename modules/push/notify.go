package push

import (
	"context"
	"strconv"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// worthy returns whether a message to an account is worth waking its
// client for, and its body: a chat or normal message with a body, an
// encrypted one, or a call invitation. Chat states, receipts and markers
// are not; nor errors, headlines, or groupchat (rooms notify mentions
// through Mention).
func worthy(st *xmpp.Element) (string, bool) {
	switch st.Get("type") {
	case "", "normal", "chat":
	default:
		return "", false
	}
	if b := st.Child(xmpp.NSClient, "body"); b != nil {
		if body := b.Text(); body != "" {
			return body, true
		}
	}
	for _, c := range st.Elements() {
		switch {
		case c.Local == "encrypted" && (c.Space == NSOMEMO || c.Space == NSOMEMOLegacy),
			c.Local == "propose" && c.Space == NSJingleMsg:
			return "", true
		}
	}
	return "", false
}

// hibernated notifies of a message that will wait in a hibernated
// session's queue (XEP-0198) because every session of the account is
// hibernated. A message that will go to offline storage instead is
// offline's.
func (m *Module) hibernated(_ context.Context, ev *xmpp.StanzaEvent) bool {
	if m.srv.Hibernating() == 0 {
		return false // what follows costs every message something
	}
	st := ev.Stanza
	body, ok := worthy(st)
	if !ok {
		return false
	}
	bare := ev.To.Bare()
	if ev.Origin != nil && ev.Origin.JID().Bare().Equal(bare) {
		return false // the account's own message
	}
	sessions := m.srv.SessionsOf(bare)
	if len(sessions) == 0 {
		return false
	}
	for _, s := range sessions {
		if !s.Hibernated() {
			return false
		}
	}
	if ev.To.Resourcepart() == "" || m.srv.SessionOf(ev.To) == nil {
		// To the bare JID (or a gone resource, which RFC 6121 §8.5.3.2.1
		// sends there): a hibernated session gets it only if it is
		// available with a non-negative priority; otherwise it goes to the
		// Undeliverable stage.
		if !m.srv.Router().Reachable(bare.String()) {
			return false
		}
	}
	m.notify(bare.String(), sender(st), body)
	return false
}

// offline notifies of a message going to offline storage.
func (m *Module) offline(_ context.Context, ev *xmpp.StanzaEvent) bool {
	if body, ok := worthy(ev.Stanza); ok {
		m.notify(ev.To.Bare().String(), sender(ev.Stanza), body)
	}
	return false
}

// sender is the bare JID of a message's sender: which of their devices
// wrote is nobody's business at the app server.
func sender(st *xmpp.Element) string {
	j, err := jid.Parse(st.Get("from"))
	if err != nil {
		return ""
	}
	return j.Bare().String()
}

// Mention notifies member, an account of this server, that a groupchat
// message from from (the sender's occupant JID in the room) mentions them
// while they are not in the room. The multi-user chat service calls it
// (muc.Service.Mentions); it notifies only when every session of the
// account is hibernated or gone, as for a message to the account.
func (m *Module) Mention(_ context.Context, member jid.JID, from jid.JID, body string) {
	bare := member.Bare()
	for _, s := range m.srv.SessionsOf(bare) {
		if !s.Hibernated() {
			return
		}
	}
	m.notify(bare.String(), from.String(), body)
}

// notify counts a message for bare and has a notification published to
// each of its services, unless one is being published: that one's
// goroutine publishes again when it is done, with the count so far.
func (m *Module) notify(bare, sender, body string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.accounts[bare]
	if a == nil {
		a = &account{}
		m.accounts[bare] = a
	}
	a.count++
	a.lastSender, a.lastBody = sender, body
	if a.sending {
		a.more = true
		return
	}
	a.sending = true
	m.wg.Add(1)
	go m.run(bare, a)
}

// reset forgets what bare's notifications counted: a client came back.
// A goroutine publishing for the account finishes with what it has.
func (m *Module) reset(bare string) {
	m.mu.Lock()
	delete(m.accounts, bare)
	m.mu.Unlock()
}

// summary is what one notification says.
type summary struct {
	count        int
	sender, body string
}

// run publishes a's notifications until no message came while it did;
// each turn of the loop answers at least one message.
func (m *Module) run(bare string, a *account) {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		sum := summary{a.count, a.lastSender, a.lastBody}
		a.more = false
		m.mu.Unlock()
		regs, err := m.Store.PushRegistrations(m.ctx, bare)
		if err != nil && m.ctx.Err() == nil {
			m.log.Warn("reading push registrations", "jid", bare, "err", err)
		}
		if len(regs) > 0 && m.ctx.Err() == nil {
			var wg sync.WaitGroup
			for _, r := range regs {
				wg.Go(func() { m.publish(bare, r, sum) })
			}
			wg.Wait()
		}
		m.mu.Lock()
		if !a.more || len(regs) == 0 || m.ctx.Err() != nil {
			a.sending = false
			if len(regs) == 0 && m.accounts[bare] == a {
				delete(m.accounts, bare) // no push: nothing to count
			}
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
	}
}

// publish sends one notification to one service (§7) and disables the
// registration when the service answers with an error (§7.1), unless the
// error says to wait and try again.
func (m *Module) publish(bare string, r storage.PushRegistration, sum summary) {
	ctx, cancel := context.WithTimeout(m.ctx, m.Timeout)
	defer cancel()
	answer, err := m.srv.Router().Request(ctx, m.notification(bare, r, sum))
	if err != nil {
		if m.ctx.Err() == nil {
			m.log.Info("push service did not answer", "jid", bare, "service", r.JID, "err", err)
		}
		return
	}
	if answer.Get("type") != "error" {
		return
	}
	e := answer.Child(xmpp.NSClient, "error")
	if e != nil && e.Get("type") == "wait" {
		m.log.Info("push service asks to wait", "jid", bare, "service", r.JID)
		return
	}
	if _, err := m.Store.DeletePush(context.WithoutCancel(ctx), bare, r.JID, r.Node); err != nil {
		m.log.Warn("disabling a push service that answered with an error", "jid", bare, "service", r.JID, "err", err)
		return
	}
	m.log.Info("push service answered with an error: disabled", "jid", bare, "service", r.JID, "error", errorCondition(e))
}

// errorCondition names an <error/>'s condition, for the log.
func errorCondition(e *xmpp.Element) string {
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Space == xmpp.NSStanzas {
			return c.Local
		}
	}
	return ""
}

// notification builds the publish (§7): the summary, and the client's
// publish-options without the fields meant for this server.
func (m *Module) notification(bare string, r storage.PushRegistration, sum summary) *xmpp.Element {
	summ := &form.Form{Type: form.TypeSubmit, FormType: NSSummary}
	summ.AddField(form.Field{Var: "message-count", Values: []string{strconv.Itoa(sum.count)}})
	if sum.sender != "" {
		summ.AddField(form.Field{Var: "last-message-sender", Values: []string{sum.sender}})
	}
	if sum.body != "" && !m.NeverBody && wantsBody(r) {
		summ.AddField(form.Field{Var: "last-message-body", Values: []string{sum.body}})
	}
	pubsub := xmpp.NewElement(NSPubSub, "pubsub").Add(
		xmpp.NewElement(NSPubSub, "publish", "node", r.Node).Add(
			xmpp.NewElement(NSPubSub, "item").Add(
				xmpp.NewElement(NS, "notification").Add(summ.Element()))))
	opts := &form.Form{Type: form.TypeSubmit, FormType: PublishOptions}
	for _, f := range r.Fields {
		if f.Var != BodyField {
			opts.AddField(form.Field{Var: f.Var, Values: f.Values})
		}
	}
	if len(opts.Fields) > 0 {
		pubsub.Add(xmpp.NewElement(NSPubSub, "publish-options").Add(opts.Element()))
	}
	return xmpp.NewElement(xmpp.NSClient, "iq", "type", "set", "from", bare, "to", r.JID).Add(pubsub)
}
