package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/storage"
)

// A password change or an account's removal must end the sessions that
// signed in before it (RFC 6120 §4.9.3.17: <not-authorized/>). Only the
// running server can end them, on every node of a cluster, and its admin
// API already does (internal/admin). So "user passwd" and "user del" go
// through that API when a server answers at listen.admin, and only change
// the database directly when none does. Watching the users table instead
// would need triggers and a poll on SQLite, a LISTEN on Postgres, and
// would still miss nothing this way misses: the API is where xmppd takes
// such changes from anyone else.
//
// xmppctl needs no API token of its own for that: it can write the
// database, so it stores a token for this one call and revokes it at once.
// That a server accepts a token just written to this database also proves
// it is this database's server, not another one on the same port.

// accountChange is "user passwd" (with password) or "user del" (without).
type accountChange struct {
	cfg      config.Config
	store    storage.Store
	bare     string
	password string // "" for del
}

// viaAPI makes the change through the running server's admin API. done
// is false, with why, when no server of this database answered there, for
// the caller to make the change in the database.
func (c accountChange) viaAPI(ctx context.Context, stdout io.Writer) (done bool, why string, err error) {
	base, err := apiBase(c.cfg, "")
	if errors.Is(err, errNoAPI) {
		return false, "no admin API is configured (listen.admin, api.enabled)", nil
	}
	if err != nil {
		return false, "", err
	}
	name := "xmppctl-" + rand.Text()[:12]
	token, hash := admin.NewToken()
	if err := c.store.CreateAPIToken(ctx, name, hash, time.Now()); err != nil {
		return false, "", fmt.Errorf("a token for the admin API: %w", err)
	}
	defer c.store.DeleteAPIToken(context.WithoutCancel(ctx), name)
	api := &apiClient{
		base:  base + admin.Prefix,
		token: token,
		http:  &http.Client{Timeout: 30 * time.Second},
	}
	path := "/accounts/" + url.PathEscape(c.bare)
	var out struct {
		SessionsEnded int `json:"sessions_ended"`
	}
	if c.password != "" {
		err = api.call(ctx, "PUT", path+"/password", map[string]string{"password": c.password}, &out)
	} else {
		err = api.call(ctx, "DELETE", path, nil, &out)
	}
	var ae *apiError
	var oe *net.OpError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial":
		return false, "no server answered at " + base, nil
	case errors.As(err, &ae) && ae.status == http.StatusUnauthorized:
		return false, "the server at " + base + " does not use this database", nil
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		return false, "", fmt.Errorf("%s does not exist", c.bare)
	case err != nil:
		return false, "", fmt.Errorf("the admin API at %s: %w", base, err)
	}
	verb := "deleted " + c.bare
	if c.password != "" {
		verb = "password changed for " + c.bare
	}
	fmt.Fprintf(stdout, "%s; %d %s ended\n", verb, out.SessionsEnded, plural(out.SessionsEnded, "session", "sessions"))
	return true, "", nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
