package admin

import (
	"context"
	"errors"
	"net/http"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// accounts is the API's accounts area: the server's own accounts, made
// with SCRAM credentials as xmppctl and in-band registration make them.
type accounts struct{ a *API }

func (p accounts) routes() []route {
	return []route{
		{"POST", "/accounts", true, p.create},
		{"GET", "/accounts", false, p.list},
		{"GET", "/accounts/{jid}", false, p.get},
		{"PUT", "/accounts/{jid}/password", true, p.password},
		{"DELETE", "/accounts/{jid}", true, p.delete},
	}
}

// An Account is what GET /accounts/{jid} answers.
type Account struct {
	JID string `json:"jid"`
	// OnlineResources counts the account's sessions on every node (the
	// presence registry's view).
	OnlineResources int `json:"online_resources"`
}

// accountItem is one entry of GET /accounts.
type accountItem struct {
	JID string `json:"jid"`
}

// accountChange answers a change that ends sessions.
type accountChange struct {
	JID           string `json:"jid"`
	SessionsEnded int    `json:"sessions_ended"`
}

// ourAccount parses an account's address from a request: field names it
// in a 400. It must be a bare JID on the served domain.
func (p accounts) ourAccount(s, field string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, invalid(field, "not a valid JID: %v", err)
	}
	if j.Localpart() == "" || j.Resourcepart() != "" {
		return jid.JID{}, invalid(field, "not an account address (user@domain)")
	}
	if j.Domainpart() != p.a.Server.Domain {
		return jid.JID{}, invalid(field, "not on the served domain %s", p.a.Server.Domain)
	}
	return j, nil
}

// pathAccount is the account named by the path: malformed is a 400, and
// an address that cannot be one of ours a 404, as an unknown account is.
func (p accounts) pathAccount(r *http.Request) (jid.JID, error) {
	s := r.PathValue("jid")
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, invalid("jid", "not a valid JID: %v", err)
	}
	if j.Localpart() == "" || j.Resourcepart() != "" || j.Domainpart() != p.a.Server.Domain {
		return jid.JID{}, notFound("no account %s", s)
	}
	return j, nil
}

// credentials derives what is stored for password; field names it in a
// 400.
func (p accounts) credentials(password, field string) (storage.Credentials, error) {
	if password == "" {
		return storage.Credentials{}, invalid(field, "must not be empty")
	}
	c, err := xmpp.NewCredentials(password, p.a.Server.SCRAMIterations)
	if err != nil {
		return c, invalid(field, "not an acceptable password: %v", err)
	}
	return c, nil
}

func (p accounts) create(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		JID       string `json:"jid"`
		Localpart string `json:"localpart"`
		Password  string `json:"password"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	var bare jid.JID
	var err error
	switch {
	case req.JID != "" && req.Localpart != "":
		return invalid("localpart", "give jid or localpart, not both")
	case req.JID != "":
		bare, err = p.ourAccount(req.JID, "jid")
	case req.Localpart != "":
		bare, err = jid.New(req.Localpart, p.a.Server.Domain, "")
		if err != nil {
			err = invalid("localpart", "not a valid localpart: %v", err)
		}
	default:
		return invalid("jid", "jid or localpart is required")
	}
	if err != nil {
		return err
	}
	creds, err := p.credentials(req.Password, "password")
	if err != nil {
		return err
	}
	if err := p.a.Store.CreateUser(r.Context(), bare.String(), creds); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return conflict("%s already exists", bare)
		}
		return err
	}
	p.a.Log.Info("account created", "jid", bare.String(), "token", TokenName(r.Context()))
	return writeJSON(w, http.StatusCreated, Account{JID: bare.String()})
}

func (p accounts) list(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := paging(r)
	if err != nil {
		return err
	}
	all, err := p.a.Store.ListUsers(r.Context())
	if err != nil {
		return err
	}
	keys, next := pageOf(all, cursor, limit)
	page := Page[accountItem]{Items: make([]accountItem, len(keys)), NextCursor: next}
	for i, k := range keys {
		page.Items[i] = accountItem{JID: k}
	}
	return writeJSON(w, http.StatusOK, page)
}

// exists reports whether the account is stored.
func (p accounts) exists(ctx context.Context, bare jid.JID) error {
	_, err := p.a.Store.Credentials(ctx, bare.String())
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no account %s", bare)
	}
	return err
}

func (p accounts) get(w http.ResponseWriter, r *http.Request) error {
	bare, err := p.pathAccount(r)
	if err != nil {
		return err
	}
	if err := p.exists(r.Context(), bare); err != nil {
		return err
	}
	// The registry knows every node's sessions; this node's own are
	// counted too, since the registry learns of a binding a moment after
	// it.
	res, err := p.a.Server.Registry().Resources(r.Context(), bare.String())
	if err != nil {
		return err
	}
	online := make(map[string]bool, len(res))
	for _, r := range res {
		online[r.Resource] = true
	}
	for _, s := range p.a.Server.SessionsOf(bare) {
		online[s.JID().Resourcepart()] = true
	}
	return writeJSON(w, http.StatusOK, Account{JID: bare.String(), OnlineResources: len(online)})
}

// password replaces the account's credentials and ends its sessions, as a
// password change in band ends the others (modules/register): they signed
// in with the old password, which may be why it changes.
func (p accounts) password(w http.ResponseWriter, r *http.Request) error {
	bare, err := p.pathAccount(r)
	if err != nil {
		return err
	}
	var req struct {
		Password string `json:"password"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	creds, err := p.credentials(req.Password, "password")
	if err != nil {
		return err
	}
	if err := p.a.Store.SetCredentials(r.Context(), bare.String(), creds); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return notFound("no account %s", bare)
		}
		return err
	}
	// Done whatever the client does now, as the password has changed.
	n := p.a.endSessions(context.WithoutCancel(r.Context()), bare, "the account's password changed")
	p.a.Log.Info("account password changed", "jid", bare.String(), "sessions_ended", n, "token", TokenName(r.Context()))
	return writeJSON(w, http.StatusOK, accountChange{JID: bare.String(), SessionsEnded: n})
}

// delete removes the account and everything stored for it, tells the
// modules (their caches), unsubscribes its contacts as an in-band removal
// does (RFC 6121 §3.2, §3.3), and ends its sessions.
func (p accounts) delete(w http.ResponseWriter, r *http.Request) error {
	bare, err := p.pathAccount(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	items, err := p.a.Store.Roster(ctx, bare.String())
	if err != nil {
		return err
	}
	if err := p.a.Store.DeleteUser(ctx, bare.String()); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return notFound("no account %s", bare)
		}
		return err
	}
	// What follows is done whatever the client does now: the account is
	// gone, and its contacts and sessions must learn it.
	ctx = context.WithoutCancel(ctx)
	p.a.Server.AccountRemoved(ctx, bare)
	for _, it := range items {
		if it.Ask || it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth {
			p.a.Server.Router().Route(ctx, presence(bare, it.Contact, "unsubscribe"), nil)
		}
		if it.PendingIn || it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth {
			p.a.Server.Router().Route(ctx, presence(bare, it.Contact, "unsubscribed"), nil)
		}
	}
	n := p.a.endSessions(ctx, bare, "the account was removed")
	p.a.Log.Info("account deleted", "jid", bare.String(), "sessions_ended", n, "token", TokenName(r.Context()))
	return writeJSON(w, http.StatusOK, accountChange{JID: bare.String(), SessionsEnded: n})
}

// presence is a subscription presence of typ from the account to contact.
func presence(from jid.JID, contact, typ string) *xmpp.Element {
	return xmpp.NewElement(xmpp.NSClient, "presence", "from", from.String(), "to", contact, "type", typ)
}
