package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/redis/redistest"
	"github.com/xmppd/xmppd/xmpp"
)

// TestClusterFederation: a two-node cluster serving localhost federates
// with another server, other.test, which reaches localhost at node B only.
// alice, on node A, writes to zed@other.test: A opens the stream, and
// other.test checks A's dialback key by asking localhost, that is node B,
// which must find the key good (the nodes share s2s.dialback_secret,
// XEP-0220 §2.3). zed's answer comes in at node B and reaches alice on A
// over the bus.
func TestClusterFederation(t *testing.T) {
	dsn := pgtest.DSN(t)
	addr, prefix := redistest.Addr(t), redistest.Prefix(t)
	ctx := context.Background()
	freeAddr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	s2sB, s2sOther := freeAddr(), freeAddr()

	otherData := t.TempDir()
	conf := filepath.Join(otherData, "xmppd.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "domain: other.test\ns2s:\n  routes:\n    localhost: %q\n", s2sB), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := xmppctl(t, "-config", conf, "-data", otherData, "user", "add", "zed@other.test", "pw"); code != 0 {
		t.Fatalf("xmppctl user add: exit %d: %s", code, out)
	}
	other := startServer(t, otherData, "-config", conf, "-s2s", s2sOther)

	extra := fmt.Sprintf("s2s:\n  dialback_secret: %q\n  routes:\n    other.test: %q\n", "0123456789abcdef0123456789abcdef", s2sOther)
	a := startNode(t, "node-a", dsn, addr, prefix, extra)
	startNode(t, "node-b", dsn, addr, prefix, extra, "-s2s", s2sB) // the node other.test reaches
	st := clusterStore(t, dsn)
	addAccounts(t, st, "", "alice@localhost")

	login := func(s *server, user string) *mxmpp.Session {
		t.Helper()
		ms, _, err := s.login(t, user, "pw")
		if err != nil {
			t.Fatal(err)
		}
		if err := ms.Send(ctx, xmlPresence()); err != nil {
			t.Fatal(err)
		}
		return ms
	}
	alice, zed := login(a, "alice@localhost"), login(other, "zed@other.test")
	send := func(from *mxmpp.Session, to jid.JID, body string) {
		t.Helper()
		if err := from.Send(ctx, stanza.Message{To: to, Type: stanza.ChatMessage}.Wrap(xmlBody(body))); err != nil {
			t.Fatal(err)
		}
	}
	got := func(ms *mxmpp.Session, from, body string) {
		t.Helper()
		expect(t, ms, func(el *xmpp.Element) bool {
			if el.Local == "message" && el.Get("type") == "error" {
				t.Fatalf("%s got an error: %s", ms.LocalAddr(), el.Bytes(xmpp.NSClient))
			}
			bd := el.Child("", "body")
			return el.Local == "message" && bd != nil && bd.Text() == body && el.Get("from") == from
		})
	}
	send(alice, jid.MustParse("zed@other.test"), "from node A")
	got(zed, alice.LocalAddr().String(), "from node A")
	send(zed, alice.LocalAddr(), "back, through node B")
	got(alice, zed.LocalAddr().String(), "back, through node B")
}
