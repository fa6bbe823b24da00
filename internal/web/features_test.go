package web_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/blocking"
	"github.com/xmppd/xmppd/modules/pep"
	"github.com/xmppd/xmppd/modules/register"
	"github.com/xmppd/xmppd/modules/upload"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// The newer features over WebSocket and BOSH: what the web transports
// carry is the same stream as TCP (docs/web.md), so each test runs the same
// steps over both, from testenv.WebTransports.

// iq sends an IQ of type typ with the payload to to (none when empty)
// over w and returns its answer.
func iq(t *testing.T, w testenv.WebClient, id, typ, to, payload string) *xmpp.Element {
	t.Helper()
	attrTo := ""
	if to != "" {
		attrTo = ` to="` + to + `"`
	}
	w.Send(t, `<iq xmlns="jabber:client" type="`+typ+`" id="`+id+`"`+attrTo+`>`+payload+`</iq>`)
	return w.Until(t, "answer to "+id, func(el *xmpp.Element) bool {
		return el.Local == "iq" && el.Get("id") == id && (el.Get("type") == "result" || el.Get("type") == "error")
	})
}

func wantResult(t *testing.T, what string, el *xmpp.Element) {
	t.Helper()
	if el.Get("type") != "result" {
		t.Fatalf("%s: %s", what, el)
	}
}

func wantCondition(t *testing.T, what string, el *xmpp.Element, cond xmpp.Condition) {
	t.Helper()
	if el.Get("type") != "error" || testenv.ErrorCondition(el) != cond {
		t.Fatalf("%s: %s, want a <%s/> error", what, el, cond)
	}
}

func accountExists(t *testing.T, s *testenv.Server, bare string) bool {
	t.Helper()
	_, err := s.Store.Credentials(context.Background(), bare)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestWebRegistration: in-band registration before authentication
// (XEP-0077 §3.1) over each web transport: with creation on, the feature
// is offered, the form read, an account created, and the client signs in
// with it on the same stream; the limit of accounts per address counts
// the web client's address, not its connection (a second stream from it
// is refused with <resource-constraint/>); with creation off (the
// default), nothing is offered and a registration is refused with
// <not-allowed/>.
func TestWebRegistration(t *testing.T) {
	off := testenv.Start(t, "sqlite")
	query := func(inner string) string { return `<query xmlns="` + register.NS + `">` + inner + `</query>` }
	for _, transport := range testenv.WebTransports() {
		t.Run(transport, func(t *testing.T) {
			// A server of its own: one account per address.
			on := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
				srv.Modules = modules.Default(modules.Options{Store: srv.Store,
					Registration: register.Creation{Enabled: true, PerAddress: 1}})
			})
			user := "carol-" + transport
			bare := user + "@" + testenv.Domain

			w := on.OpenWeb(t, transport)
			if w.Features().Child(register.NSFeature, "register") == nil {
				t.Fatalf("registration not offered: %s", w.Features())
			}
			form := iq(t, w, "form", "get", "", query(""))
			q := form.Child(register.NS, "query")
			if form.Get("type") != "result" || q == nil || q.Child(register.NS, "username") == nil || q.Child(register.NS, "password") == nil {
				t.Fatalf("registration form: %s", form)
			}
			wantResult(t, "registration", iq(t, w, "create", "set", "", query(`<username>`+user+`</username><password>pw `+transport+`</password>`)))
			if full := w.SignIn(t, user, "pw "+transport, "web"); full.String() != bare+"/web" {
				t.Fatalf("signed in as %s, want %s/web", full, bare)
			}
			wantResult(t, "ping after sign-in", iq(t, w, "ping", "get", "", `<ping xmlns="urn:xmpp:ping"/>`))

			w = on.OpenWeb(t, transport)
			wantCondition(t, "a second registration from the address", iq(t, w, "again", "set", "", query(`<username>dave</username><password>pw</password>`)),
				xmpp.ResourceConstraintC)
			if accountExists(t, on, "dave@"+testenv.Domain) {
				t.Fatal("an account beyond the address's limit was created")
			}

			w = off.OpenWeb(t, transport)
			if w.Features().Child(register.NSFeature, "register") != nil {
				t.Fatalf("registration offered while off: %s", w.Features())
			}
			wantCondition(t, "registration while off", iq(t, w, "create", "set", "", query(`<username>`+user+`</username><password>pw</password>`)), xmpp.NotAllowed)
			if accountExists(t, off, bare) {
				t.Fatal("an account was created while registration is off")
			}
		})
	}
}

// TestWebBlocking: a block list set over each web transport (XEP-0191)
// is applied: the blocked contact's message is refused with
// <service-unavailable/> (§3.6) and never reaches the web client; once
// unblocked, the contact's next message does.
func TestWebBlocking(t *testing.T) {
	s, alice, bob := start(t, "sqlite")
	tcp := s.Dial(t, bob, "bob pw", "tcp")
	items := `<item jid="` + bob.String() + `"/>`
	for _, transport := range testenv.WebTransports() {
		t.Run(transport, func(t *testing.T) {
			w := s.OpenWeb(t, transport)
			full := w.SignIn(t, alice.Localpart(), "alice pw", transport)
			wantResult(t, "block", iq(t, w, "block", "set", "", `<block xmlns="`+blocking.NS+`">`+items+`</block>`))
			list := iq(t, w, "list", "get", "", `<blocklist xmlns="`+blocking.NS+`"/>`)
			if bl := list.Child(blocking.NS, "blocklist"); bl == nil || bl.Child(blocking.NS, "item") == nil ||
				bl.Child(blocking.NS, "item").Get("jid") != bob.String() {
				t.Fatalf("block list: %s", list)
			}

			blocked, after := "blocked over "+transport, "unblocked over "+transport
			tcp.SendRaw(t, `<message type="chat" to="`+full.String()+`"><body>`+blocked+`</body></message>`)
			bounce := tcp.Expect(t, "the error for the blocked message", func(el *xmpp.Element) bool {
				return el.Local == "message" && el.Get("type") == "error" && el.Get("from") == full.String()
			})
			if testenv.ErrorCondition(bounce) != xmpp.ServiceUnavailable {
				t.Fatalf("blocked message answered %s, want <service-unavailable/>", bounce)
			}

			wantResult(t, "unblock", iq(t, w, "unblock", "set", "", `<unblock xmlns="`+blocking.NS+`">`+items+`</unblock>`))
			tcp.SendRaw(t, `<message type="chat" to="`+full.String()+`"><body>`+after+`</body></message>`)
			// Bob's messages arrive in order: the one sent while blocked
			// would come before this one.
			w.Until(t, "bob's message after the unblock", func(el *xmpp.Element) bool {
				b := el.Child("", "body")
				if el.Local != "message" || b == nil {
					return false
				}
				if b.Text() == blocked {
					t.Fatalf("the blocked message was delivered: %s", el)
				}
				return b.Text() == after && el.Get("from") == tcp.JID.String()
			})
		})
	}
}

// TestWebUpload: an upload slot (XEP-0363) requested over each web
// transport, from the service the server's disco items list; the PUT
// stores the file and the GET returns the same bytes.
func TestWebUpload(t *testing.T) {
	l := testenv.Listen(t)
	s := testenv.StartWithHTTP(t, "sqlite", l, func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store,
			Upload: &upload.Service{Dir: t.TempDir(), PublicURL: "http://" + l.Addr().String()}})
	})
	alice := s.AddUser(t, "alice", "alice pw")
	service := "upload." + testenv.Domain
	for i, transport := range testenv.WebTransports() {
		t.Run(transport, func(t *testing.T) {
			w := s.OpenWeb(t, transport)
			w.SignIn(t, alice.Localpart(), "alice pw", transport)
			items := iq(t, w, "items", "get", testenv.Domain, `<query xmlns="`+upload.NSItems+`"/>`)
			if !bytes.Contains(items.Bytes(xmpp.NSClient), []byte(`jid="`+service+`"`)) {
				t.Fatalf("disco items do not list %s: %s", service, items)
			}

			data := bytes.Repeat([]byte(fmt.Sprintf("%s %d\n", transport, i)), 4000)
			res := iq(t, w, "slot", "get", service, fmt.Sprintf(`<request xmlns="%s" filename="notes %s.txt" size="%d" content-type="text/plain"/>`,
				upload.NS, transport, len(data)))
			slot := res.Child(upload.NS, "slot")
			if res.Get("type") != "result" || slot == nil {
				t.Fatalf("slot request: %s", res)
			}
			put, get := slot.Child(upload.NS, "put").Get("url"), slot.Child(upload.NS, "get").Get("url")

			req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, put, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "text/plain")
			hc := &http.Client{Timeout: testenv.Timeout}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("PUT %s: %s", put, resp.Status)
			}
			resp, err = hc.Get(get)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
				t.Fatalf("GET %s: %s, %d bytes (want %d, the same), %v", get, resp.Status, len(got), len(data), err)
			}
		})
	}
}

// withCaps sends available presence announcing the capabilities of a
// client with interest in node (XEP-0115 §5.1; XEP-0163 §4.4: node+notify)
// and answers the server's disco#info query for them, which it asks
// once per hash (name, the client's, makes it differ): send writes
// elements, until waits for one (a testenv.Client's SendRaw and Expect, a
// web client's Send and Until). self is the client's full JID. The
// server learns the interest once it has the answer; callers wait for a
// last item to know it has.
func withCaps(t *testing.T, send func(testing.TB, string), until func(testing.TB, string, func(*xmpp.Element) bool) *xmpp.Element, self, name, node string) {
	t.Helper()
	const nsCaps, nsInfo, capsNode = "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info", "https://xmppd.test/web"
	feats := []string{nsCaps, nsInfo, node, node + "+notify"}
	slices.Sort(feats)
	hashed, info := "client/web//"+name+"<", `<identity category="client" type="web" name="`+name+`"/>`
	for _, f := range feats {
		hashed += f + "<"
		info += `<feature var="` + f + `"/>`
	}
	sum := sha1.Sum([]byte(hashed))
	ver := base64.StdEncoding.EncodeToString(sum[:])
	send(t, `<presence xmlns="jabber:client"><c xmlns="`+nsCaps+`" hash="sha-1" node="`+capsNode+`" ver="`+ver+`"/></presence>`)
	q := until(t, "the server's disco#info query", func(el *xmpp.Element) bool {
		return el.Local == "iq" && el.Get("type") == "get" && el.Get("to") == self && el.Child(nsInfo, "query") != nil
	})
	if got := q.Child(nsInfo, "query").Get("node"); got != capsNode+"#"+ver {
		t.Fatalf("disco#info query for node %q, want %q", got, capsNode+"#"+ver)
	}
	send(t, `<iq xmlns="jabber:client" type="result" id="`+q.Get("id")+`" to="`+q.Get("from")+`"><query xmlns="`+nsInfo+
		`" node="`+capsNode+`#`+ver+`">`+info+`</query></iq>`)
}

// pepItem is the id of the one item of a notification from 'from' of node,
// sent late (with a delay stamp, XEP-0060 §12.4) or not; "" when el is
// something else.
func pepItem(el *xmpp.Element, from, node string, late bool) string {
	ev := el.Child(pep.NSEvent, "event")
	if el.Local != "message" || el.Get("from") != from || ev == nil || (el.Child("urn:xmpp:delay", "delay") != nil) != late {
		return ""
	}
	items := ev.Child(pep.NSEvent, "items")
	if items == nil || items.Get("node") != node || items.Child(pep.NSEvent, "item") == nil {
		return ""
	}
	return items.Child(pep.NSEvent, "item").Get("id")
}

// TestWebPEP: personal eventing (XEP-0163) over each web transport. A web
// client publishes, and its contact over TCP, whose capabilities ask for
// the node, is notified; then the web client announces capabilities
// asking for it, answers the server's disco#info query, is sent the last
// items (its contact's and its own), and is notified of its contact's
// next publish.
func TestWebPEP(t *testing.T) {
	const node = "http://jabber.org/protocol/nick"
	nick := func(id, name string) string {
		return `<pubsub xmlns="` + pep.NS + `"><publish node="` + node + `"><item id="` + id + `"><nick xmlns="` + node + `">` +
			name + `</nick></item></publish></pubsub>`
	}
	for _, transport := range testenv.WebTransports() {
		t.Run(transport, func(t *testing.T) {
			s, alice, bob := start(t, "sqlite")
			tcp := s.Dial(t, bob, "bob pw", "tcp")
			// Bob's nick first: once he is sent it as his own last item, the
			// server knows his interest.
			if res := tcp.IQ(t, "set", "", nick("bob1", "Bob")); res.Get("type") != "result" {
				t.Fatalf("bob publishes: %s", res)
			}
			withCaps(t, tcp.SendRaw, tcp.Expect, tcp.JID.String(), "xmppd over tcp", node)
			tcp.Expect(t, "bob's own last item", func(el *xmpp.Element) bool { return pepItem(el, bob.String(), node, true) == "bob1" })

			w := s.OpenWeb(t, transport)
			full := w.SignIn(t, alice.Localpart(), "alice pw", transport)
			wantResult(t, "alice publishes over "+transport, iq(t, w, "pub1", "set", "", nick("alice1", "Alice over "+transport)))
			got := tcp.Expect(t, "alice's nick", func(el *xmpp.Element) bool { return pepItem(el, alice.String(), node, false) != "" })
			if id := pepItem(got, alice.String(), node, false); id != "alice1" || !bytes.Contains(got.Bytes(xmpp.NSClient), []byte("Alice over "+transport)) {
				t.Fatalf("bob's notification: %s", got)
			}

			withCaps(t, w.Send, w.Until, full.String(), "xmppd over "+transport, node)
			last := map[string]bool{}
			for range 2 {
				w.Until(t, "a last item", func(el *xmpp.Element) bool {
					for _, from := range []string{alice.String(), bob.String()} {
						if id := pepItem(el, from, node, true); id != "" {
							last[from+" "+id] = true
							return true
						}
					}
					return false
				})
			}
			if !last[bob.String()+" bob1"] || !last[alice.String()+" alice1"] {
				t.Fatalf("last items %v, want bob's and alice's own", last)
			}

			if res := tcp.IQ(t, "set", "", nick("bob2", "Robert")); res.Get("type") != "result" {
				t.Fatalf("bob publishes again: %s", res)
			}
			w.Until(t, "bob's new nick", func(el *xmpp.Element) bool { return pepItem(el, bob.String(), node, false) == "bob2" })
		})
	}
}
