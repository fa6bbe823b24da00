package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/stanza"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres"
	"github.com/xmppd/xmppd/xmpp"
)

// client is a signed-in mellium session and its connection, on which
// waits get a deadline.
type client struct {
	*mxmpp.Session
	conn net.Conn
}

func signIn(t *testing.T, s *server, user string) client {
	t.Helper()
	ms, conn, err := s.login(t, user, "pw")
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return client{ms, conn}
}

// await reads c's stream until match holds, for at most testenv.Timeout.
func (c client) await(t *testing.T, match func(*xmpp.Element) bool) *xmpp.Element {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(testenv.Timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	return expect(t, c.Session, match)
}

// raw writes XML to c's stream.
func (c client) raw(t *testing.T, x string) {
	t.Helper()
	if _, err := io.WriteString(c.Conn(), x); err != nil {
		t.Fatalf("send %s: %v", x, err)
	}
}

// chat sends a chat message with id and body to.
func (c client) chat(t *testing.T, to, id, body string) {
	t.Helper()
	c.raw(t, fmt.Sprintf(`<message type="chat" to="%s" id="%s"><body>%s</body></message>`, to, id, body))
}

// gets waits for a message with body.
func (c client) gets(t *testing.T, body string) {
	t.Helper()
	c.await(t, func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Local == "message" && el.Get("type") != "error" && b != nil && b.Text() == body
	})
}

// outcome sends a ping after a stanza with id and returns the error the
// stanza got, or nil when the ping's answer came first: stanzas of one
// session are handled in order, and storing offline returns once the
// message is durable, so the answer means the stanza was taken.
func (c client) outcome(t *testing.T, id string) *xmpp.Element {
	t.Helper()
	c.raw(t, `<iq type="get" id="after-`+id+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	el := c.await(t, func(el *xmpp.Element) bool {
		return (el.Get("type") == "error" && el.Get("id") == id) || el.Get("id") == "after-"+id
	})
	if el.Get("id") == id {
		return el
	}
	return nil
}

// online sends initial presence and asks for the roster, so that the
// session gets roster pushes (RFC 6121 §2.1.6: an interested resource).
func (c client) online(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := c.Send(ctx, stanza.IQ{ID: "roster", Type: stanza.GetIQ}.Wrap(xmlstream.Wrap(nil,
		xml.StartElement{Name: xml.Name{Space: xmpp.NSRoster, Local: "query"}}))); err != nil {
		t.Fatal(err)
	}
	c.await(t, func(el *xmpp.Element) bool { return el.Get("id") == "roster" })
	if err := c.Send(ctx, xmlPresence()); err != nil {
		t.Fatal(err)
	}
	c.await(t, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == c.LocalAddr().String()
	})
}

// stanzaCondition is the defined condition of an error stanza.
func stanzaCondition(el *xmpp.Element) string {
	e := el.Child("", "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Space == xmpp.NSStanzas && c.Local != "text" {
			return c.Local
		}
	}
	return ""
}

// readyz is the admin listener's readiness status code.
func (s *server) readyz(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// saslOutcome signs in as user (a localpart) with PLAIN on a raw stream and returns the
// server's answer: <success/> or the <failure/>.
func (s *server) saslOutcome(t *testing.T, user, password string) *xmpp.Element {
	t.Helper()
	ts := testenv.StartTLSAt(t, s.c2s, s.clientTLS(t))
	defer ts.Close()
	io.WriteString(ts, testenv.PlainAuth(user, password))
	el, err := ts.Next()
	if err != nil {
		t.Fatalf("SASL PLAIN as %s: %v", user, err)
	}
	return el
}

// startOnPostgres runs xmppd, one node, with its storage in the Postgres
// database dsn; extra is YAML appended to its configuration.
func startOnPostgres(t *testing.T, dsn, extra string) *server {
	t.Helper()
	data := t.TempDir()
	conf := filepath.Join(data, "xmppd.yaml")
	err := os.WriteFile(conf, fmt.Appendf(nil, "domain: localhost\nstorage:\n  backend: postgres\n  postgres_dsn: %q\n%s", dsn, extra), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, data, "-config", conf)
}

// TestPostgresRestart restarts xmppd's Postgres (a private one) under
// signed-in users (issue 21, storage faults). While it is down:
// /readyz says not ready; alice and bob, online, go on chatting; new
// sign-ins fail with <temporary-auth-failure/> and do not count as
// failures (with limits of 2, four of them leave carol and the address
// free); a message to dave, offline, is refused to alice with
// internal-server-error rather than taken and dropped. Meanwhile bob joins
// alice's team by SQL while no watch can hear it. When Postgres is back,
// without a restart of xmppd: /readyz is ready, carol signs in, alice and
// bob get the roster pushes of the team change (the watch resynchronised),
// and dave gets the message that was stored before the restart.
func TestPostgresRestart(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	addAccounts(t, st, "", "alice@localhost", "bob@localhost", "carol@localhost", "dave@localhost")
	if err := st.CreateGroup(ctx, storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddMember(ctx, "eng", "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	s := startOnPostgres(t, pg.DSN(), "auth:\n  max_failures: 2\n  max_account_failures: 2\n  failure_window: 1h\n")
	alice, bob := signIn(t, s, "alice@localhost"), signIn(t, s, "bob@localhost")
	alice.online(t)
	bob.online(t)
	alice.chat(t, "dave@localhost", "kept", "stored before the restart")
	if el := alice.outcome(t, "kept"); el != nil {
		t.Fatalf("a message to dave, offline, with Postgres up: %s", el)
	}
	if code := s.readyz(t); code != http.StatusOK {
		t.Fatalf("/readyz %d before the restart", code)
	}

	pg.Stop()
	await(t, "/readyz to say not ready", func() bool { return s.readyz(t) == http.StatusServiceUnavailable })

	alice.chat(t, bob.LocalAddr().String(), "d1", "while the database is away")
	bob.gets(t, "while the database is away")
	bob.chat(t, "alice@localhost", "d2", "still here")
	alice.gets(t, "still here")

	for i := range 4 {
		el := s.saslOutcome(t, "carol", "pw")
		if el.Local != "failure" || el.Child("", "temporary-auth-failure") == nil {
			t.Fatalf("sign-in %d while Postgres is down: %s; want <failure><temporary-auth-failure/>", i+1, el)
		}
	}

	alice.chat(t, "dave@localhost", "lost", "sent while the database is away")
	el := alice.outcome(t, "lost")
	if el == nil || stanzaCondition(el) != string(xmpp.InternalError) {
		t.Fatalf("a message to offline dave while Postgres is down was taken (%v); want an internal-server-error back", el)
	}

	// The app adds bob to alice's team while xmppd cannot reach the
	// database (TCP off), so no NOTIFY reaches any watch.
	pg.StartSocketOnly()
	pg.Exec(`INSERT INTO group_members (group_id, jid) VALUES ('eng', 'bob@localhost')`)
	pg.Stop()
	pg.Start()

	await(t, "/readyz to say ready", func() bool { return s.readyz(t) == http.StatusOK })
	var carolErr error
	await(t, "carol to sign in after the restart", func() bool {
		var ms *mxmpp.Session
		ms, _, carolErr = s.login(t, "carol@localhost", "pw")
		if carolErr != nil {
			t.Logf("carol: %v", carolErr)
			return false
		}
		ms.Close()
		return true
	})

	pushed := func(c client, contact string) {
		t.Helper()
		push := c.await(t, func(el *xmpp.Element) bool {
			q := el.Child(xmpp.NSRoster, "query")
			if el.Local != "iq" || el.Get("type") != "set" || q == nil {
				return false
			}
			it := q.Child(xmpp.NSRoster, "item")
			return it != nil && it.Get("jid") == contact
		})
		it := push.Child(xmpp.NSRoster, "query").Child(xmpp.NSRoster, "item")
		if g := it.Child(xmpp.NSRoster, "group"); it.Get("subscription") != "both" || g == nil || g.Text() != "Engineering" {
			t.Errorf("%s's push for %s: %s", c.LocalAddr().Bare(), contact, push)
		}
	}
	pushed(alice, "bob@localhost")
	pushed(bob, "alice@localhost")

	dave := signIn(t, s, "dave@localhost")
	if err := dave.Send(ctx, xmlPresence()); err != nil {
		t.Fatal(err)
	}
	dave.gets(t, "stored before the restart")

	alice.chat(t, bob.LocalAddr().String(), "a1", "after the restart")
	bob.gets(t, "after the restart")
}
