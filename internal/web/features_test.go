package web_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/blocking"
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
