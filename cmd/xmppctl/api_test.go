package main

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

func TestAPITokenCommands(t *testing.T) {
	data := newData(t)
	d := []string{"-data", data}
	r := ctl(t, "", append(d, "api-token", "create", "billing")...)
	r.check(t, "create", 0, admin.TokenPrefix)
	token := strings.TrimSpace(r.stdout)
	ctl(t, "", append(d, "api-token", "create", "billing")...).check(t, "create again", 1, "exists")
	ctl(t, "", append(d, "api-token", "create", "bad name")...).check(t, "bad name", 1, "letters")
	ctl(t, "", append(d, "api-token", "create")...).check(t, "no name", 2, "usage")
	ctl(t, "", append(d, "api-token", "rotate", "x")...).check(t, "unknown", 2, "usage")

	// The store has the token's hash, and never the token.
	st := openSQLite(t, data)
	got, err := st.APITokenByHash(t.Context(), admin.HashToken(token))
	if err != nil || got.Name != "billing" {
		t.Fatalf("the printed token is not the stored one: %+v, %v", got, err)
	}
	if name, err := (admin.StoredTokens{Store: st}).Check(t.Context(), token); err != nil || name != "billing" {
		t.Fatalf("Check = %q, %v", name, err)
	}
	files, _ := filepath.Glob(filepath.Join(data, "xmppd.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), token) || strings.Contains(string(b), strings.TrimPrefix(token, admin.TokenPrefix)) {
			t.Fatalf("%s holds the token", f)
		}
	}

	r = ctl(t, "", append(d, "api-token", "list")...)
	r.check(t, "list", 0, "billing\t")
	if fields := strings.Split(strings.TrimSpace(r.stdout), "\t"); len(fields) != 3 || fields[2] == "never" {
		t.Fatalf("list printed %q, want name, created, last used", r.stdout)
	}
	ctl(t, "", append(d, "api-token", "revoke", "billing")...).check(t, "revoke", 0, "revoked billing")
	ctl(t, "", append(d, "api-token", "revoke", "billing")...).check(t, "revoke again", 1, "no token")
	if r := ctl(t, "", append(d, "api-token", "list")...); r.stdout != "" {
		t.Fatalf("list after revoke: %q", r.stdout)
	}
}

// TestLiveCommands runs session and status against a running server's
// admin API.
func TestLiveCommands(t *testing.T) {
	ts := testenv.Start(t, "sqlite")
	api := &admin.API{Server: ts.Server, Store: ts.Store, Tokens: admin.StoredTokens{Store: ts.Store}, Log: slog.New(slog.DiscardHandler)}
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(hs.Close)
	token, hash := admin.NewToken()
	if err := ts.Store.CreateAPIToken(t.Context(), "ops", hash, time.Now()); err != nil {
		t.Fatal(err)
	}
	alice := ts.AddUser(t, "alice", "pw")
	c := ts.Dial(t, alice, "pw", "desk")

	data := newData(t)
	live := func(args ...string) result {
		return ctl(t, "", append([]string{"-data", data}, args...)...)
	}
	// The token from the environment, the address from a flag.
	t.Setenv("XMPPD_API_TOKEN", token)
	r := live("status", "-api", hs.URL)
	r.check(t, "status", 0, "version   test")
	for _, want := range []string{"domain    localhost", "sessions  1 (0 hibernated)", "accounts  1", "node      " + ts.Server.Node()} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status printed %q, want %q in it", r.stdout, want)
		}
	}
	r = live("session", "list", "-api", hs.URL)
	r.check(t, "session list", 0, "alice@localhost/desk\ttcp\t"+ts.Server.Node()+"\t")
	if !strings.Contains(r.stdout, "\t127.0.0.1:") {
		t.Errorf("session list printed %q, want the client's address", r.stdout)
	}
	// A headline from the server reaches the available session (a
	// headline to a bare JID goes to available resources only), and an
	// app event reaches it.
	c.SendRaw(t, "<presence/>")
	c.Expect(t, "own presence", func(el *xmpp.Element) bool { return el.Local == "presence" })
	live("send", "-type", "headline", "-subject", "Deploy", "-api", hs.URL, "alice@localhost", "v2 is out").
		check(t, "send", 0, "to 1 recipients and 0 rooms")
	c.Expect(t, "the headline", func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Local == "message" && el.Get("type") == "headline" && el.Get("from") == "localhost" && b != nil && b.Text() == "v2 is out"
	})
	live("event", "-api", hs.URL, "task.updated", `{"id":7}`, "alice").check(t, "event", 0, "1 sessions, stored for 0 accounts")
	c.Expect(t, "the event", func(el *xmpp.Element) bool {
		ev := el.Child("urn:xmppd:event:0", "event")
		return el.Local == "message" && ev != nil && ev.Get("name") == "task.updated" && strings.Contains(ev.Text(), `"id":7`)
	})
	live("event", "-api", hs.URL, "task.updated", `{"id":7}`, "room:lobby").check(t, "event to a room", 2, "not rooms")
	live("event", "-api", hs.URL, "task.updated", `not json`, "alice").check(t, "event with bad JSON", 1, "")
	live("send", "-api", hs.URL, "group:nosuch", "hi").check(t, "send to an unknown team", 1, "HTTP 404")

	live("session", "kick", "bob@localhost/x", "-api", hs.URL).check(t, "kick nobody", 1, "no session")
	live("session", "kick", "alice@localhost", "-api", hs.URL).check(t, "kick bare", 1, "jid: a full JID")
	live("session", "kick", "alice@localhost/desk", "-api", hs.URL).check(t, "kick", 0, "disconnected alice@localhost/desk")
	c.ExpectStreamError(t, "policy-violation")

	// The token from a flag beats the environment; a wrong one is refused.
	live("status", "-api", hs.URL, "-token", "xmppd_wrong").check(t, "wrong token", 1, "HTTP 401")
	// The address and the token from the configuration file.
	t.Setenv("XMPPD_API_TOKEN", "")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "xmppd.yaml")
	addr := strings.TrimPrefix(hs.URL, "http://")
	if err := os.WriteFile(cfg, []byte("listen:\n  admin: "+addr+"\napi:\n  token_file: "+tokenFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl(t, "", "-config", cfg, "-data", data, "status").check(t, "status from the config", 0, "accounts  1")
	live("status", "-api", hs.URL).check(t, "no token", 1, "no API token")
	live("status", "extra").check(t, "status with an argument", 2, "usage")
	live("session").check(t, "session alone", 2, "usage")
}
