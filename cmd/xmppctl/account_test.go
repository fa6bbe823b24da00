package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/sqlite"
	"github.com/xmppd/xmppd/xmpp"
)

// TestAccountChangeEndsSessions runs "user passwd" and "user del" while a
// server runs on the same database: its sessions of the account end with
// <not-authorized/> (RFC 6120 §4.9.3.17), through the admin API, with a
// token xmppctl stores for the call and revokes after it. With no server
// answering, or one on another database, the change is made in the
// database and xmppctl says that no session was ended.
func TestAccountChangeEndsSessions(t *testing.T) {
	t.Setenv("XMPPD_API", "")
	data := newData(t)
	st, err := sqlite.Open(context.Background(), filepath.Join(data, "xmppd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.Store = st })
	api := &admin.API{Server: ts.Server, Store: st, Tokens: admin.StoredTokens{Store: st}, Log: slog.New(slog.DiscardHandler)}
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(hs.Close)
	alice := ts.AddUser(t, "alice", "old pw")
	bob := ts.AddUser(t, "bob", "bob pw")
	carol := ts.AddUser(t, "carol", "carol pw")
	cfg := configFile(t, "listen:\n  admin: "+strings.TrimPrefix(hs.URL, "http://")+"\n")

	c := ts.Dial(t, alice, "old pw", "desk")
	ctl(t, "", "-config", cfg, "-data", data, "user", "passwd", "alice@localhost", "new pw").
		check(t, "passwd", 0, "password changed for alice@localhost; 1 session ended")
	c.ExpectStreamError(t, "not-authorized")
	if _, err := ts.DialFrom(t, "127.0.0.1", alice, "old pw", "again"); err == nil {
		t.Error("the old password still signs in")
	}
	ts.Dial(t, alice, "new pw", "again").Close()

	b := ts.Dial(t, bob, "bob pw", "phone")
	ctl(t, "", "-config", cfg, "-data", data, "user", "del", "bob@localhost").
		check(t, "del", 0, "deleted bob@localhost; 1 session ended")
	b.ExpectStreamError(t, "not-authorized")
	if _, err := st.Credentials(t.Context(), "bob@localhost"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("bob's credentials after del: %v, want not found", err)
	}
	ctl(t, "", "-config", cfg, "-data", data, "user", "del", "bob@localhost").check(t, "del again", 1, "bob@localhost does not exist")
	if list, err := st.ListAPITokens(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("API tokens left behind: %v (%v)", list, err)
	}

	// A server on another database does not know xmppctl's token: the
	// change goes to this database, and nothing pretends to end sessions.
	other := testenv.Start(t, "sqlite")
	otherAPI := &admin.API{Server: other.Server, Store: other.Store, Tokens: admin.StoredTokens{Store: other.Store}, Log: slog.New(slog.DiscardHandler)}
	ohs := httptest.NewServer(otherAPI.Handler())
	t.Cleanup(ohs.Close)
	cfg = configFile(t, "listen:\n  admin: "+strings.TrimPrefix(ohs.URL, "http://")+"\n")
	ctl(t, "", "-config", cfg, "-data", data, "user", "passwd", "carol@localhost", "carol pw 2").
		check(t, "passwd, another server", 0, "password changed for carol@localhost (the server at "+ohs.URL+" does not use this database: no session was ended)")
	// No server at all.
	ohs.Close()
	ctl(t, "", "-config", cfg, "-data", data, "user", "del", "carol@localhost").
		check(t, "del, no server", 0, "deleted carol@localhost (no server answered at "+ohs.URL+": no session was ended)")
	if _, err := st.Credentials(t.Context(), carol.String()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("carol's credentials after del: %v, want not found", err)
	}
	// No API configured.
	cfg = configFile(t, "api:\n  enabled: false\n")
	ctl(t, "", "-config", cfg, "-data", data, "user", "passwd", "alice@localhost", "pw 3").
		check(t, "passwd, no API", 0, "no admin API is configured")
}

// configFile writes a configuration file with body and returns its path.
func configFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xmppd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
