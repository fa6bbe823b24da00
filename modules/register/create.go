package register

import (
	"context"
	"encoding/xml"
	"errors"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// Defaults of Creation's limits.
const (
	DefaultPerAddress = 1
	DefaultWindow     = time.Hour
)

// Creation configures account creation before sign-in (§3.1). The zero
// value refuses it.
type Creation struct {
	// Enabled lets clients create accounts.
	Enabled bool
	// PerAddress is how many accounts one IP address may create within
	// Window: zero selects DefaultPerAddress, a negative value means no
	// limit. The count is kept by each node for itself.
	PerAddress int
	// Window is zero for DefaultWindow.
	Window time.Duration
	// RequireInvite asks for an invitation token (xmppctl invite create)
	// in the form's "token" field; each is good for one account.
	RequireInvite bool
}

// Invites is what creation needs of the invitation store.
type Invites interface {
	UseInvite(ctx context.Context, hash []byte, now time.Time) error
	DeleteExpiredInvites(ctx context.Context, now time.Time) (int, error)
}

// creations counts the accounts created per address within the window.
type creations struct {
	mu    sync.Mutex
	times map[string][]time.Time
}

// reserve takes one of addr's creations, if it has one left at now; the
// caller gives it back with release when the creation fails.
func (c *creations) reserve(addr string, now time.Time, max int, window time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.times == nil {
		c.times = make(map[string][]time.Time)
	}
	if len(c.times) > 10000 {
		// Drop what is out of the window everywhere, so that the map is
		// bounded by the addresses active within one window.
		for a, ts := range c.times {
			if len(recent(ts, now, window)) == 0 {
				delete(c.times, a)
			}
		}
	}
	ts := recent(c.times[addr], now, window)
	if max > 0 && len(ts) >= max {
		c.times[addr] = ts
		return false
	}
	c.times[addr] = append(ts, now)
	return true
}

func (c *creations) release(addr string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.times[addr]
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(at) {
			c.times[addr] = append(ts[:i:i], ts[i+1:]...)
			return
		}
	}
}

func recent(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= window {
		i++
	}
	return ts[i:]
}

// sweepEvery is how often expired invitations are deleted.
const sweepEvery = time.Hour

// sweepInvites deletes expired invitations now and then, until the server
// stops; an expired one is refused either way, this only keeps the table
// small.
func (m *Module) sweepInvites(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		if n, err := m.Invites.DeleteExpiredInvites(ctx, time.Now()); err != nil && ctx.Err() == nil {
			m.log.Warn("deleting expired invitations", "err", err)
		} else if n > 0 {
			m.log.Debug("deleted expired invitations", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// preAuth is the stream feature that answers registration IQs before
// sign-in; it is announced only while creation is on.
func (m *Module) preAuth() xmpp.PreAuthIQ {
	return xmpp.PreAuthIQ{
		Space:    NS,
		Feature:  xml.Name{Space: NSFeature, Local: "register"},
		Announce: func() bool { return m.Creation.Enabled },
		Handle:   m.handlePreAuth,
	}
}

// handlePreAuth answers a get with the form and a set by creating the
// account; done once an account was created.
func (m *Module) handlePreAuth(ctx context.Context, addr string, iq *xmpp.Element) (*xmpp.Element, bool) {
	payload := iq.Elements()[0]
	var err error
	var done bool
	var res *xmpp.Element
	switch {
	case payload.Local != "query":
		err = xmpp.StanzaError{Condition: xmpp.ServiceUnavailable}
	case !m.Creation.Enabled:
		err = xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "account creation is off on this server"}
	case iq.Get("type") == "get":
		res = m.form()
	case iq.Get("type") == "set":
		err = m.create(ctx, addr, payload)
		done = err == nil
	default:
		err = xmpp.StanzaError{Condition: xmpp.BadRequest}
	}
	if err != nil {
		var se xmpp.StanzaError
		if !errors.As(err, &se) {
			m.log.Warn("in-band registration failed", "addr", addr, "err", err)
			se = xmpp.StanzaError{Condition: xmpp.InternalError}
		}
		// Without the payload: it may hold a password.
		return xmpp.ErrorReply(xmpp.NewElement(iq.Space, "iq", "id", iq.Get("id")), se), false
	}
	return xmpp.ResultReply(iq, res), done
}

// form is what a new account needs (§3.1 example 1, and the same as a data
// form, §4, which is where an invitation goes).
func (m *Module) form() *xmpp.Element {
	q := xmpp.NewElement(NS, "query")
	text := "Choose a username and password."
	if m.Creation.RequireInvite {
		text = "Choose a username and password, and give your invitation."
	}
	q.Add(xmpp.NewElement(NS, "instructions").Add(xmpp.Text(text)),
		xmpp.NewElement(NS, "username"), xmpp.NewElement(NS, "password"))
	fm := &form.Form{Type: form.TypeForm, FormType: NS, Instructions: text}
	fm.AddField(form.Field{Var: "username", Type: form.TextSingle, Label: "Username", Required: true})
	fm.AddField(form.Field{Var: "password", Type: form.TextPrivate, Label: "Password", Required: true})
	if m.Creation.RequireInvite {
		fm.AddField(form.Field{Var: "token", Type: form.TextSingle, Label: "Invitation", Required: true})
	}
	return q.Add(fm.Element())
}

// submission reads username, password and token from the plain fields or
// from a data form.
func submission(payload *xmpp.Element) (user, password, token string) {
	if x := payload.Child(form.NS, "x"); x != nil {
		if fm, err := form.Parse(x); err == nil {
			return fm.Value("username"), fm.Value("password"), fm.Value("token")
		}
	}
	text := func(local string) string {
		if el := payload.Child(NS, local); el != nil {
			return el.Text()
		}
		return ""
	}
	return text("username"), text("password"), text("token")
}

// create makes the account of a submission (§3.1), within the address's
// limit, with an invitation when one is required.
func (m *Module) create(ctx context.Context, addr string, payload *xmpp.Element) error {
	user, password, token := submission(payload)
	if user == "" || password == "" {
		return xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "a username and a password are required"}
	}
	if m.Creation.RequireInvite && token == "" {
		return xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "an invitation is required"}
	}
	j, err := jid.New(user, m.srv.Domain, "")
	if err != nil {
		return xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "not a valid username"}
	}
	now := time.Now()
	// Before the key derivation, which costs, so that an address past its
	// limit costs nothing.
	if !m.created.reserve(addr, now, m.Creation.PerAddress, m.Creation.Window) {
		m.log.Info("in-band registration refused: address limit", "addr", addr)
		return xmpp.StanzaError{Condition: xmpp.ResourceConstraintC, Text: "too many accounts created from this address; try again later"}
	}
	creds, err := xmpp.NewCredentials(password, m.Iterations)
	if err != nil {
		m.created.release(addr, now)
		return xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "the password is not acceptable"}
	}
	bare := j.String()
	if err := m.Store.CreateUser(ctx, bare, creds); err != nil {
		m.created.release(addr, now)
		if errors.Is(err, storage.ErrExists) {
			return xmpp.StanzaError{Condition: xmpp.ConflictCond, Text: "that username is taken"}
		}
		return err
	}
	if m.Creation.RequireInvite {
		// After the account exists, so that a taken username does not
		// spend the invitation; the account goes again if it was not good.
		if err := m.Invites.UseInvite(ctx, HashToken(token), now); err != nil {
			m.created.release(addr, now)
			if derr := m.Store.DeleteUser(ctx, bare); derr != nil {
				m.log.Warn("removing an account whose invitation failed", "jid", bare, "err", derr)
			}
			if errors.Is(err, storage.ErrNotFound) {
				return xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "the invitation is unknown, used or expired"}
			}
			return err
		}
	}
	m.log.Info("account created in band", "jid", bare, "addr", addr)
	return nil
}
