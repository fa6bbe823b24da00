package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mxmpp "mellium.im/xmpp"

	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/redis/redistest"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces the tests below speak.
const (
	nsCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsPubsub    = "http://jabber.org/protocol/pubsub"
	nsPubsubEv  = "http://jabber.org/protocol/pubsub#event"
	nsNick      = "http://jabber.org/protocol/nick"
	nsUpdate    = "vcard-temp:x:update"
	nsStreams   = "http://etherx.jabber.org/streams"
)

// clusterPair starts nodes A and B on one fresh Postgres database and
// Redis prefix, with the accounts given (password "pw"), each the others'
// contact with a mutual subscription.
func clusterPair(t *testing.T, users ...string) (a, b *server, st storage.Store) {
	t.Helper()
	dsn := pgtest.DSN(t)
	addr, prefix := redistest.Addr(t), redistest.Prefix(t)
	a = startNode(t, "node-a", dsn, addr, prefix, "")
	pg := clusterStore(t, dsn)
	addAccounts(t, pg, "", users...)
	befriend(t, pg, users...)
	b = startNode(t, "node-b", dsn, addr, prefix, "")
	return a, b, pg
}

// rawXML reads XML as written, without resolving namespaces, so that a
// stanza given as text is sent as it reads (in the stream's namespace).
type rawXML struct{ d *xml.Decoder }

func (r rawXML) Token() (xml.Token, error) { return r.d.RawToken() }

// sendXML sends one stanza written as XML.
func sendXML(t *testing.T, ms *mxmpp.Session, s string) {
	t.Helper()
	if err := ms.Send(context.Background(), rawXML{xml.NewDecoder(strings.NewReader(s))}); err != nil {
		t.Fatal(err)
	}
}

// clientCaps is a client's capabilities asking for the notifications of
// nick (XEP-0115 §5.1 verification string, identities and features only).
type clientCaps struct{ ver, info string }

func nickCaps() clientCaps {
	feats := []string{nsCaps, nsDiscoInfo, nsNick, nsNick + "+notify"}
	slices.Sort(feats)
	s := "client/pc//xmppd test<"
	info := `<identity category="client" type="pc" name="xmppd test"/>`
	for _, f := range feats {
		s += f + "<"
		info += `<feature var="` + f + `"/>`
	}
	h := sha1.Sum([]byte(s))
	return clientCaps{ver: base64.StdEncoding.EncodeToString(h[:]), info: info}
}

// expectAnswering is expect for a client with capabilities: it answers
// the server's disco#info requests (XEP-0115 §6.3), which a node makes
// once per set of capabilities, whenever they come.
func expectAnswering(t *testing.T, ms *mxmpp.Session, c clientCaps, match func(*xmpp.Element) bool) *xmpp.Element {
	t.Helper()
	return expect(t, ms, func(el *xmpp.Element) bool {
		if q := el.Child(nsDiscoInfo, "query"); el.Local == "iq" && el.Get("type") == "get" && q != nil {
			sendXML(t, ms, `<iq type="result" id="`+xmlEscape(el.Get("id"))+`" to="`+xmlEscape(el.Get("from"))+`">`+
				`<query xmlns="`+nsDiscoInfo+`" node="`+xmlEscape(q.Get("node"))+`">`+c.info+`</query></iq>`)
			return false
		}
		return match(el)
	})
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// onlineWithCaps sends available presence announcing c and waits for it
// to come back.
func onlineWithCaps(t *testing.T, ms *mxmpp.Session, c clientCaps) {
	t.Helper()
	sendCaps(t, ms, c)
	expectAnswering(t, ms, c, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == ms.LocalAddr().String()
	})
}

// sendCaps sends available presence announcing c.
func sendCaps(t *testing.T, ms *mxmpp.Session, c clientCaps) {
	t.Helper()
	sendXML(t, ms, `<presence><c xmlns="`+nsCaps+`" hash="sha-1" node="https://xmppd.test/client" ver="`+c.ver+`"/></presence>`)
}

// nickIn returns the nick a PEP notification from owner carries, if el is
// one.
func nickIn(el *xmpp.Element, owner string) (string, bool) {
	if el.Local != "message" || el.Get("from") != owner {
		return "", false
	}
	items := el.Child(nsPubsubEv, "event")
	if items != nil {
		items = items.Child(nsPubsubEv, "items")
	}
	if items == nil || items.Get("node") != nsNick {
		return "", false
	}
	if it := items.Child(nsPubsubEv, "item"); it != nil {
		if n := it.Child(nsNick, "nick"); n != nil {
			return n.Text(), true
		}
	}
	return "", false
}

// TestClusterPEP runs PEP (XEP-0163) on two nodes: alice publishes on node
// A, and her contact bob and her own second resource on node B are
// notified; a session bob opens on B later is sent the newest item, not
// the one node B had read before the publish; a configuration made on A
// holds on B at once; a vCard photo set on A puts its hash in the presence
// of alice's session on B (XEP-0153, XEP-0398 §4).
func TestClusterPEP(t *testing.T) {
	a, b, _ := clusterPair(t, "alice@localhost", "bob@localhost")
	caps := nickCaps()
	login := func(s *server, user string) *mxmpp.Session { return loginFor(t, s, user) }
	var alice *mxmpp.Session
	publish := func(ms *mxmpp.Session, id, nick string) {
		t.Helper()
		sendXML(t, ms, `<iq type="set" id="`+id+`"><pubsub xmlns="`+nsPubsub+`"><publish node="`+nsNick+`">`+
			`<item><nick xmlns="`+nsNick+`">`+nick+`</nick></item></publish></pubsub></iq>`)
	}
	// gets waits for ms to be notified of alice's nick want. A
	// notification of an earlier nick may come first, when it was on its
	// way from the other node while ms signed in and was sent the last
	// item (it is then the same item twice); strict says that none may.
	gets := func(ms *mxmpp.Session, want string, strict bool) {
		t.Helper()
		expectAnswering(t, ms, caps, func(el *xmpp.Element) bool {
			if el.Local == "iq" && el.Get("type") == "error" {
				// A refused publish, said at once rather than by a timeout.
				t.Fatalf("%s, waiting for alice's nick %q: %s", ms.LocalAddr(), want, el.Bytes(xmpp.NSClient))
			}
			got, ok := nickIn(el, "alice@localhost")
			if ok && got != want && strict {
				t.Fatalf("%s got alice's nick %q, want %q", ms.LocalAddr(), got, want)
			}
			return ok && got == want
		})
	}
	// published waits for alice's publish id to be done and for her own
	// notification of nick, in either order: the result and the
	// notification are two stanzas the server may send either way round
	// (waiting for one and then the other once lost the result on a
	// loaded machine).
	published := func(id, nick string) {
		t.Helper()
		done, notified := false, false
		expectAnswering(t, alice, caps, func(el *xmpp.Element) bool {
			if el.Get("id") == id {
				if el.Get("type") != "result" {
					t.Fatalf("publish: %s", el)
				}
				done = true
			}
			if got, ok := nickIn(el, "alice@localhost"); ok {
				if got != nick {
					t.Fatalf("alice got her nick %q, want %q", got, nick)
				}
				notified = true
			}
			return done && notified
		})
	}

	alice = login(a, "alice@localhost")
	onlineWithCaps(t, alice, caps)
	publish(alice, "p1", "Alice")
	published("p1", "Alice")

	// bob signs in on B: node B reads alice's service and sends him the
	// last item; alice's second resource is on B too.
	// (The last items come before the presence when the node knows the
	// capabilities already, after it when it asks the client first.)
	bob := login(b, "bob@localhost")
	sendCaps(t, bob, caps)
	gets(bob, "Alice", false)
	alice2 := login(b, "alice@localhost")
	sendCaps(t, alice2, caps)
	gets(alice2, "Alice", false)

	// A publish on A reaches B's sessions: her contact, and her own.
	publish(alice, "p2", "Alice II")
	published("p2", "Alice II")
	gets(bob, "Alice II", false)
	gets(alice2, "Alice II", false)

	// A new session on B gets the newest item: node B forgot what it had
	// read when A told it of the publish.
	bob2 := login(b, "bob@localhost")
	sendCaps(t, bob2, caps)
	gets(bob2, "Alice II", true)

	// alice makes the node a whitelist on A: bob, asking B for its items,
	// is refused as soon as B has heard of it.
	sendXML(t, alice, `<iq type="set" id="c1"><pubsub xmlns="`+nsPubsub+`#owner"><configure node="`+nsNick+`">`+
		`<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>`+nsPubsub+`#node_config</value></field>`+
		`<field var="pubsub#access_model"><value>whitelist</value></field></x></configure></pubsub></iq>`)
	expectAnswering(t, alice, caps, func(el *xmpp.Element) bool {
		if el.Get("id") == "c1" && el.Get("type") != "result" {
			t.Fatalf("configure: %s", el)
		}
		return el.Get("id") == "c1"
	})
	deadline := time.Now().Add(testenv.Timeout)
	for i := 0; ; i++ {
		id := "items" + string(rune('a'+i%26))
		sendXML(t, bob, `<iq type="get" id="`+id+`" to="alice@localhost"><pubsub xmlns="`+nsPubsub+`"><items node="`+nsNick+`"/></pubsub></iq>`)
		res := expectAnswering(t, bob, caps, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == id })
		if res.Get("type") == "error" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B still serves bob the items of a whitelist node: %s", res)
		}
	}

	// alice sets a vCard with a photo on A: her session on B announces
	// its hash, and bob sees it.
	photo := []byte("not really a PNG, but bytes all the same")
	sum := sha1.Sum(photo)
	hash := hex.EncodeToString(sum[:])
	sendXML(t, alice, `<iq type="set" id="v1"><vCard xmlns="vcard-temp"><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>`+
		base64.StdEncoding.EncodeToString(photo)+`</BINVAL></PHOTO></vCard></iq>`)
	expectAnswering(t, bob, caps, func(el *xmpp.Element) bool {
		x := el.Child(nsUpdate, "x")
		return el.Local == "presence" && el.Get("from") == alice2.LocalAddr().String() &&
			x != nil && x.Child(nsUpdate, "photo") != nil && x.Child(nsUpdate, "photo").Text() == hash
	})
}

// TestClusterAdmin asks node A's admin API about sessions on both nodes:
// the list and the counts include node B's, an app event and a message
// reach bob on B, and ending sessions there (a kick, a password change, an
// account's removal) works from A. xmppctl shows the same. A node that
// does not answer is named, and makes xmppctl's list fail.
func TestClusterAdmin(t *testing.T) {
	a, b, st := clusterPair(t, "alice@localhost", "bob@localhost", "carol@localhost")
	token, hash := admin.NewToken()
	if err := st.CreateAPIToken(context.Background(), "cluster", hash, time.Now()); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string, want int) map[string]any {
		t.Helper()
		code, v, raw := apiCall(t, token, method, "http://"+a.admin+"/api/v1"+path, body)
		if code != want || v == nil {
			t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, code, want, raw)
		}
		return v
	}
	login := func(s *server, user string) *mxmpp.Session { return loginFor(t, s, user) }
	alice := login(a, "alice@localhost")
	bob := login(b, "bob@localhost")
	carol := login(b, "carol@localhost")

	st1 := call("GET", "/status", "", 200)
	perNode, _ := json.Marshal(st1["per_node"])
	if st1["sessions"] != 1.0 || st1["cluster_sessions"] != 3.0 ||
		string(perNode) != `[{"hibernated":0,"node":"node-a","sessions":1},{"hibernated":0,"node":"node-b","sessions":2}]` {
		t.Fatalf("status: %v", st1)
	}
	list := call("GET", "/sessions", "", 200)
	var where []string
	for _, it := range list["items"].([]any) {
		s := it.(map[string]any)
		where = append(where, s["jid"].(string)+" "+s["node"].(string))
	}
	want := []string{alice.LocalAddr().String() + " node-a", bob.LocalAddr().String() + " node-b", carol.LocalAddr().String() + " node-b"}
	if !slices.Equal(where, want) || list["unanswered"] != nil {
		t.Fatalf("sessions: %v, want %v", list, want)
	}
	// Paging across the nodes: one at a time, in order.
	var paged []string
	for cursor := ""; ; {
		page := call("GET", "/sessions?limit=1&cursor="+url.QueryEscape(cursor), "", 200)
		for _, it := range page["items"].([]any) {
			paged = append(paged, it.(map[string]any)["jid"].(string))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(paged, []string{alice.LocalAddr().String(), bob.LocalAddr().String(), carol.LocalAddr().String()}) {
		t.Fatalf("paged one at a time: %v", paged)
	}

	// xmppctl, pointed at node A, lists and counts both nodes.
	ctl := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "xmppctl"), append(args, "-api", "http://"+a.admin)...)
		cmd.Env = append(os.Environ(), "XMPPD_API_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("xmppctl %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	if out := ctl("session", "list"); !strings.Contains(out, bob.LocalAddr().String()+"\ttcp\tnode-b\t") {
		t.Fatalf("xmppctl session list:\n%s", out)
	}
	if out := ctl("status"); !strings.Contains(out, "cluster sessions  3 (0 hibernated)") || !strings.Contains(out, "node-b") {
		t.Fatalf("xmppctl status:\n%s", out)
	}

	// An app event and a message, sent through A, reach bob on B; the
	// event is not stored, since he has a session.
	ev := call("POST", "/events", `{"to":{"jids":["bob@localhost"]},"name":"task.updated","payload":{"id":7},"store":true}`, 200)
	if ev["delivered"] != 1.0 || len(ev["stored"].([]any)) != 0 {
		t.Fatalf("event: %v", ev)
	}
	expect(t, bob, func(el *xmpp.Element) bool {
		e := el.Child(admin.NSEvent, "event")
		return el.Local == "message" && e != nil && e.Get("name") == "task.updated" && e.Text() == `{"id":7}`
	})
	// A message to his bare JID goes to his available resources
	// (RFC 6121 §8.5.2.1.1), wherever they are: he becomes one.
	if err := bob.Send(context.Background(), xmlPresence()); err != nil {
		t.Fatal(err)
	}
	expect(t, bob, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == bob.LocalAddr().String()
	})
	call("POST", "/messages", `{"to":{"jids":["bob@localhost"]},"body":"from the app"}`, 200)
	expect(t, bob, func(el *xmpp.Element) bool {
		body := el.Child(xmpp.NSClient, "body")
		return el.Local == "message" && body != nil && body.Text() == "from the app"
	})

	// Ending sessions on B from A.
	call("DELETE", "/sessions/"+url.PathEscape(bob.LocalAddr().String()), "", 200)
	streamEnds(t, bob, "policy-violation")
	call("DELETE", "/sessions/"+url.PathEscape(bob.LocalAddr().String()), "", 404)
	bob = login(b, "bob@localhost")
	if out := call("PUT", "/accounts/bob@localhost/password", `{"password":"new"}`, 200); out["sessions_ended"] != 1.0 {
		t.Fatalf("password change: %v", out)
	}
	streamEnds(t, bob, "not-authorized")
	if out := call("DELETE", "/accounts/carol@localhost", "", 200); out["sessions_ended"] != 1.0 {
		t.Fatalf("account removal: %v", out)
	}
	streamEnds(t, carol, "not-authorized")
	await(t, "the cluster to count alice alone", func() bool {
		return call("GET", "/status", "", 200)["cluster_sessions"] == 1.0
	})

	// Node B stops answering (stopped, not dead: it is still alive in
	// the registry for up to its TTL of 2 s, and the API waits 3 s for
	// an answer, so both questions are asked at once, at the start): the
	// status says so, and xmppctl's list fails.
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer b.cmd.Process.Signal(syscall.SIGCONT)
	cmd := exec.Command(filepath.Join(bin, "xmppctl"), "session", "list", "-api", "http://"+a.admin)
	cmd.Env = append(os.Environ(), "XMPPD_API_TOKEN="+token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if st := call("GET", "/status", "", 200); !slices.Equal(st["unanswered"].([]any), []any{"node-b"}) || st["cluster_sessions"] != 1.0 {
		t.Fatalf("status with node B stopped: %v", st)
	}
	err := cmd.Wait()
	if err == nil || !strings.Contains(out.String(), alice.LocalAddr().String()) || !strings.Contains(out.String(), "did not answer") ||
		!strings.Contains(out.String(), "node-b") {
		t.Fatalf("xmppctl session list with node B stopped: %v:\n%s", err, &out)
	}
}

// loginFor signs user in on s; its connection ends after testenv.Timeout,
// so that a wait for what never comes fails rather than hangs.
func loginFor(t *testing.T, s *server, user string) *mxmpp.Session {
	t.Helper()
	ms, conn, err := s.login(t, user, "pw")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(testenv.Timeout))
	return ms
}

// streamEnds waits for ms's stream to end with the stream error cond.
func streamEnds(t *testing.T, ms *mxmpp.Session, cond string) {
	t.Helper()
	r := ms.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			if !strings.Contains(err.Error(), cond) && !errors.Is(err, io.EOF) {
				t.Fatalf("%s's stream ended with %v, want %s", ms.LocalAddr(), err, cond)
			}
			if errors.Is(err, io.EOF) {
				t.Fatalf("%s's stream ended without the stream error %s", ms.LocalAddr(), cond)
			}
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		el, err := xmpp.ReadElement(r, start)
		if err != nil {
			if strings.Contains(err.Error(), cond) {
				return
			}
			t.Fatal(err)
		}
		if el.Space == nsStreams && el.Local == "error" {
			for _, c := range el.Elements() {
				if c.Local == cond {
					return
				}
			}
			t.Fatalf("%s's stream ended with %s, want %s", ms.LocalAddr(), el, cond)
		}
	}
}

// TestClusterInBand changes a password and removes an account in band
// (XEP-0077) through node A: the account's sessions on node B end too.
func TestClusterInBand(t *testing.T) {
	a, b, _ := clusterPair(t, "bob@localhost", "carol@localhost")
	bob, bobThere := loginFor(t, a, "bob@localhost"), loginFor(t, b, "bob@localhost")
	sendXML(t, bob, `<iq type="set" id="pw"><query xmlns="jabber:iq:register"><username>bob</username><password>new</password></query></iq>`)
	if r := expect(t, bob, func(el *xmpp.Element) bool { return el.Get("id") == "pw" }); r.Get("type") != "result" {
		t.Fatalf("password change: %s", r)
	}
	streamEnds(t, bobThere, "not-authorized")

	carol, carolThere := loginFor(t, a, "carol@localhost"), loginFor(t, b, "carol@localhost")
	sendXML(t, carol, `<iq type="set" id="rm"><query xmlns="jabber:iq:register"><remove/></query></iq>`)
	streamEnds(t, carolThere, "not-authorized")
}
