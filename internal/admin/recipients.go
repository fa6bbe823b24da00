package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

// maxRecipients bounds the addresses one message or event names, before
// teams and projects are expanded.
const maxRecipients = 1000

// Recipients are whom a message or an event goes to: accounts (or any
// address, for messages), and every member of teams and projects.
type Recipients struct {
	JIDs   []string `json:"jids,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// expand checks the addresses (400 naming field+".jids[i]") and the groups
// (404 for an unknown one) and returns the distinct bare JIDs, sorted, and
// the full JIDs named, which keep their resource. local limits the
// addresses to accounts of this server.
func (a *API) expand(ctx context.Context, field string, to Recipients, local bool) ([]string, error) {
	if len(to.JIDs)+len(to.Groups) > maxRecipients {
		return nil, invalid(field, "names more than %d addresses", maxRecipients)
	}
	var out []string
	for i, s := range to.JIDs {
		f := fmt.Sprintf("%s.jids[%d]", field, i)
		j, err := a.parseAddress(s, local)
		if err != nil {
			return nil, invalid(f, "%v", err)
		}
		out = append(out, j)
	}
	for i, id := range to.Groups {
		if id == "" {
			return nil, invalid(fmt.Sprintf("%s.groups[%d]", field, i), "is empty")
		}
		members, err := a.Store.Members(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, notFound("no team or project %q", id)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, members...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// parseAddress reads an address: a name without "@" is the localpart of
// an account of this server; with local, it must be one, named by its
// bare JID or its localpart; otherwise any JID, of another server too.
func (a *API) parseAddress(s string, local bool) (string, error) {
	if s != "" && !strings.Contains(s, "@") {
		s += "@" + a.Server.Domain
	}
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid JID", s)
	}
	if local && (j.Localpart() == "" || j.Resourcepart() != "" || j.Domainpart() != a.Server.Domain) {
		return "", fmt.Errorf("%q is not an account of %s", s, a.Server.Domain)
	}
	return j.String(), nil
}
