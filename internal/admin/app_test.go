package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// tokens is the API's token input for tests: a fixed map.
type tokens map[string]string

func (m tokens) Check(_ context.Context, token string) (string, error) {
	if n, ok := m[token]; ok {
		return n, nil
	}
	return "", storage.ErrNotFound
}

// app is a running server with the chat service and its admin API.
type app struct {
	*testenv.Server
	url string
}

func startApp(t *testing.T, backend string) *app {
	t.Helper()
	s := testenv.Start(t, backend, func(s *xmpp.Server) {
		s.Modules = modules.Default(modules.Options{Store: s.Store, MUC: true})
	})
	api := &admin.API{Server: s.Server, Store: s.Store, Tokens: tokens{"secret": "test-app"}}
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(hs.Close)
	// The roster module watches groups from here on, so that a change the
	// test makes next reaches online rosters.
	for _, m := range s.Modules {
		if r, ok := m.(*roster.Module); ok {
			select {
			case <-r.Watching():
			case <-t.Context().Done():
			}
		}
	}
	return &app{Server: s, url: hs.URL + admin.Prefix}
}

// call makes a request with the token; body is JSON-encoded unless nil.
// It returns the status and the decoded answer (nil for none).
func (a *app) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

// must is call that fails t unless the status is want.
func (a *app) must(t *testing.T, want int, method, path string, body any) map[string]any {
	t.Helper()
	status, out := a.call(t, method, path, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, status, want, out)
	}
	return out
}

// bad is call that expects a 400 naming field.
func (a *app) bad(t *testing.T, field, method, path string, body any) {
	t.Helper()
	out := a.must(t, http.StatusBadRequest, method, path, body)
	if out["field"] != field {
		t.Errorf("%s %s: field %v, want %q (%v)", method, path, out["field"], field, out["error"])
	}
}

// online signs a user in over TCP, asks for its roster (so that it gets
// pushes) and sends available presence.
func online(t *testing.T, s *testenv.Server, local, resource string) *testenv.Client {
	t.Helper()
	c := s.Dial(t, s.AddUser(t, local, "pw"), "pw", resource)
	if el := c.IQ(t, "get", "", `<query xmlns="jabber:iq:roster"/>`); el.Get("type") != "result" {
		t.Fatalf("roster get: %s", el)
	}
	c.SendRaw(t, `<presence/>`)
	return c
}

// isPush matches a roster push of contact in group.
func isPush(contact, group string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		if el.Local != "iq" || el.Get("type") != "set" {
			return false
		}
		q := el.Child(xmpp.NSRoster, "query")
		if q == nil {
			return false
		}
		it := q.Child(xmpp.NSRoster, "item")
		if it == nil || it.Get("jid") != contact {
			return false
		}
		if group == "" {
			return it.Get("subscription") == "remove"
		}
		g := it.Child(xmpp.NSRoster, "group")
		return g != nil && g.Text() == group
	}
}

func names(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		switch x := x.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			if id, ok := x["id"].(string); ok {
				out = append(out, id)
			} else {
				out = append(out, x["jid"].(string))
			}
		}
	}
	return out
}

func TestGroups(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		a := startApp(t, backend)
		alice := online(t, a.Server, "alice", "a")
		online(t, a.Server, "bob", "b")
		const aliceJID, bobJID, carolJID = "alice@localhost", "bob@localhost", "carol@localhost"

		out := a.must(t, http.StatusCreated, "POST", "/groups",
			map[string]any{"id": "design", "kind": "team", "name": "Design", "members": []string{"alice", bobJID}})
		if got := strings.Join(names(out["members"]), ","); got != aliceJID+","+bobJID {
			t.Errorf("members on creation: %s", got)
		}
		alice.Expect(t, "a push for bob under Design", isPush(bobJID, "Design"))

		a.must(t, http.StatusOK, "PATCH", "/groups/design", map[string]any{"name": "Product design"})
		alice.Expect(t, "a push for bob under the new name", isPush(bobJID, "Product design"))

		// A project of the team, and paging over both.
		a.must(t, http.StatusCreated, "POST", "/groups", map[string]any{"id": "launch", "kind": "project", "parent": "design"})
		page := a.must(t, http.StatusOK, "GET", "/groups?limit=1", nil)
		if names(page["items"])[0] != "design" || page["next_cursor"] != "design" {
			t.Fatalf("first page: %v", page)
		}
		page = a.must(t, http.StatusOK, "GET", "/groups?limit=1&cursor=design", nil)
		if names(page["items"])[0] != "launch" || page["next_cursor"] != nil {
			t.Fatalf("second page: %v", page)
		}
		got := a.must(t, http.StatusOK, "GET", "/groups/launch", nil)
		if got["parent"] != "design" || got["kind"] != "project" || got["name"] != "launch" {
			t.Errorf("GET project: %v", got)
		}

		// Members: one by one, and several at once.
		a.must(t, http.StatusNoContent, "PUT", "/groups/design/members/carol", nil)
		alice.Expect(t, "a push for carol", isPush(carolJID, "Product design"))
		a.must(t, http.StatusOK, "POST", "/groups/design/members", map[string]any{"remove": []string{"bob", "carol"}})
		alice.Expect(t, "bob removed", isPush(bobJID, ""))
		alice.Expect(t, "carol removed", isPush(carolJID, ""))
		m := a.must(t, http.StatusOK, "GET", "/groups/design/members", nil)
		if got := strings.Join(names(m["items"]), ","); got != aliceJID {
			t.Errorf("members: %s", got)
		}

		// Errors: nothing changes.
		a.bad(t, "kind", "POST", "/groups", map[string]any{"id": "x", "kind": "club"})
		a.bad(t, "id", "POST", "/groups", map[string]any{"kind": "team"})
		a.bad(t, "members[1]", "POST", "/groups", map[string]any{"id": "x", "kind": "team", "members": []string{"bob", "bob@elsewhere.example"}})
		a.bad(t, "parent", "POST", "/groups", map[string]any{"id": "x", "kind": "team", "parent": "design"})
		a.bad(t, "add[0]", "POST", "/groups/design/members", map[string]any{"add": []string{"a@b@c"}, "remove": []string{"alice"}})
		a.bad(t, "name", "PATCH", "/groups/design", map[string]any{"name": ""})
		a.bad(t, "colour", "PATCH", "/groups/design", map[string]any{"colour": "red"})
		a.must(t, http.StatusNotFound, "POST", "/groups", map[string]any{"id": "x", "kind": "project", "parent": "nope"})
		a.must(t, http.StatusConflict, "POST", "/groups", map[string]any{"id": "design", "kind": "team"})
		a.must(t, http.StatusNotFound, "GET", "/groups/x", nil)
		a.must(t, http.StatusNotFound, "PATCH", "/groups/x", map[string]any{"name": "X"})
		a.must(t, http.StatusNotFound, "DELETE", "/groups/design/members/bob", nil)
		a.must(t, http.StatusNotFound, "PUT", "/groups/x/members/bob", nil)
		a.must(t, http.StatusNotFound, "POST", "/groups/x/members", map[string]any{"add": []string{"bob"}})
		a.bad(t, "remove[1]", "POST", "/groups/design/members", map[string]any{"add": []string{"bob"}, "remove": []string{"carol", "bob@localhost"}})
		if _, err := a.Store.Group(t.Context(), "x"); err == nil {
			t.Error("a refused creation left group x")
		}
		if m, _ := a.Store.Members(t.Context(), "design"); strings.Join(m, ",") != aliceJID {
			t.Errorf("a refused change touched the members: %v", m)
		}

		a.must(t, http.StatusNoContent, "DELETE", "/groups/design", nil)
		a.must(t, http.StatusNotFound, "DELETE", "/groups/design", nil)
	})
}

// join enters a room and waits for the self-presence (status 110).
func join(t *testing.T, c *testenv.Client, room, nick string) {
	t.Helper()
	c.SendRaw(t, `<presence to="`+room+`/`+nick+`"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	c.Expect(t, "self-presence in "+room, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == room+"/"+nick && hasStatus(el, "110")
	})
}

func hasStatus(el *xmpp.Element, code string) bool {
	x := el.Child(muc.NSUser, "x")
	if x == nil {
		return false
	}
	for _, s := range x.Elements() {
		if s.Local == "status" && s.Get("code") == code {
			return true
		}
	}
	return false
}

func TestRooms(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		a := startApp(t, backend)
		bob := online(t, a.Server, "bob", "b")
		const room = "design@conference.localhost"

		out := a.must(t, http.StatusCreated, "POST", "/rooms", map[string]any{
			"room": "design", "kind": "group", "name": "Design", "owners": []string{"alice"}, "members": []string{"bob"}})
		if out["jid"] != room || out["kind"] != "group" || len(names(out["members"])) != 2 {
			t.Fatalf("created: %v", out)
		}
		if st, err := a.Store.Room(t.Context(), room); err != nil || !st.Config.MembersOnly || st.Config.Name != "Design" {
			t.Fatalf("stored room: %+v, %v", st, err)
		}
		a.must(t, http.StatusCreated, "POST", "/rooms", map[string]any{"room": "lobby@conference.localhost", "kind": "chat", "max_occupants": 50})
		a.must(t, http.StatusCreated, "POST", "/rooms", map[string]any{"room": "zoo", "kind": "chat"})
		page := a.must(t, http.StatusOK, "GET", "/rooms?limit=2", nil)
		if got := strings.Join(names(page["items"]), ","); got != room+",lobby@conference.localhost" || page["next_cursor"] != "lobby@conference.localhost" {
			t.Fatalf("first page: %v", page)
		}
		page = a.must(t, http.StatusOK, "GET", "/rooms?limit=2&cursor=lobby@conference.localhost", nil)
		if got := strings.Join(names(page["items"]), ","); got != "zoo@conference.localhost" || page["next_cursor"] != nil {
			t.Fatalf("second page: %v", page)
		}

		// bob, a member, joins; the room's configuration changes live.
		join(t, bob, room, "bob")
		got := a.must(t, http.StatusOK, "GET", "/rooms/design", nil)
		if got["occupants"] != 1.0 {
			t.Errorf("occupants: %v", got)
		}
		out = a.must(t, http.StatusOK, "PATCH", "/rooms/design", map[string]any{"name": "Design team", "history_length": 5})
		if cfg := out["config"].(map[string]any); cfg["name"] != "Design team" || cfg["history_length"] != 5.0 || cfg["members_only"] != true {
			t.Errorf("configured: %v", out)
		}
		bob.Expect(t, "status 104", func(el *xmpp.Element) bool {
			return el.Local == "message" && el.Get("from") == room && hasStatus(el, "104")
		})
		if st, err := a.Store.Room(t.Context(), room); err != nil || st.Config.Name != "Design team" {
			t.Errorf("stored after PATCH: %+v, %v", st, err)
		}

		// Members: carol becomes an admin; bob loses membership and so his
		// place (321).
		a.must(t, http.StatusNoContent, "PUT", "/rooms/design/members/carol@localhost", map[string]any{"affiliation": "admin"})
		m := a.must(t, http.StatusOK, "GET", "/rooms/design/members", nil)
		if got := strings.Join(names(m["items"]), ","); got != "alice@localhost,bob@localhost,carol@localhost" {
			t.Errorf("members: %s", got)
		}
		a.must(t, http.StatusConflict, "DELETE", "/rooms/design/members/alice@localhost", nil)
		a.must(t, http.StatusNoContent, "DELETE", "/rooms/design/members/bob@localhost", nil)
		bob.Expect(t, "removal as a non-member (321)", func(el *xmpp.Element) bool {
			return el.Local == "presence" && el.Get("type") == "unavailable" && hasStatus(el, "321")
		})
		a.must(t, http.StatusNotFound, "DELETE", "/rooms/design/members/bob@localhost", nil)

		// Destroy with an occupant present: the occupant is told (§10.9).
		bob2 := online(t, a.Server, "dave", "d")
		join(t, bob2, "lobby@conference.localhost", "dave")
		a.must(t, http.StatusNoContent, "DELETE", "/rooms/lobby?reason=closing", nil)
		bob2.Expect(t, "destroy", func(el *xmpp.Element) bool {
			x := el.Child(muc.NSUser, "x")
			if el.Local != "presence" || el.Get("type") != "unavailable" || x == nil {
				return false
			}
			d := x.Child(muc.NSUser, "destroy")
			return d != nil && d.Child(muc.NSUser, "reason") != nil && d.Child(muc.NSUser, "reason").Text() == "closing"
		})
		if _, err := a.Store.Room(t.Context(), "lobby@conference.localhost"); err == nil {
			t.Error("a destroyed room is still stored")
		}
		a.must(t, http.StatusNotFound, "GET", "/rooms/lobby", nil)
		a.must(t, http.StatusNotFound, "DELETE", "/rooms/lobby", nil)

		// Errors.
		a.bad(t, "kind", "POST", "/rooms", map[string]any{"room": "x", "kind": "hall"})
		a.bad(t, "room", "POST", "/rooms", map[string]any{"room": "x@elsewhere.example"})
		a.bad(t, "members[0]", "POST", "/rooms", map[string]any{"room": "x", "members": []string{"a@b@c"}})
		a.bad(t, "max_occupants", "POST", "/rooms", map[string]any{"room": "x", "kind": "group", "max_occupants": 3})
		a.bad(t, "whois", "PATCH", "/rooms/design", map[string]any{"whois": "everybody"})
		a.bad(t, "affiliation", "PUT", "/rooms/design/members/bob@localhost", map[string]any{"affiliation": "king"})
		a.must(t, http.StatusConflict, "POST", "/rooms", map[string]any{"room": "design"})
		a.must(t, http.StatusNotFound, "PATCH", "/rooms/nope", map[string]any{"name": "X"})
		if _, err := a.Store.Room(t.Context(), "x@conference.localhost"); err == nil {
			t.Error("a refused creation left room x")
		}
	})
}

func isMessage(from, typ, body string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		b := el.Child(xmpp.NSClient, "body")
		return el.Local == "message" && el.Get("from") == from && el.Get("type") == typ && b != nil && b.Text() == body
	}
}

// isEvent matches an app event called name whose payload is payload.
func isEvent(name, payload string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		ev := el.Child(admin.NSEvent, "event")
		return el.Local == "message" && el.Get("from") == testenv.Domain && ev != nil && ev.Get("name") == name && ev.Text() == payload
	}
}

func TestMessagesAndEvents(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		a := startApp(t, backend)
		alice := online(t, a.Server, "alice", "tcp")
		// alice is also signed in from a page, over WebSocket on one
		// backend and BOSH on the other.
		transport := testenv.TransportWebSocket
		if backend == "postgres" {
			transport = testenv.TransportBOSH
		}
		web := a.OpenWeb(t, transport)
		web.SignIn(t, "alice", "pw", "web")
		web.Send(t, `<presence xmlns="jabber:client"/>`)
		bob := online(t, a.Server, "bob", "b")
		// The session list names the web session's transport.
		seen := ""
		for _, it := range a.must(t, http.StatusOK, "GET", "/sessions", nil)["items"].([]any) {
			if s := it.(map[string]any); s["jid"] == "alice@localhost/web" {
				seen, _ = s["transport"].(string)
			}
		}
		if seen != transport {
			t.Errorf("GET /sessions: alice@localhost/web over %q, want %q", seen, transport)
		}
		a.AddUser(t, "carol", "pw")
		a.must(t, http.StatusCreated, "POST", "/groups",
			map[string]any{"id": "t", "kind": "team", "members": []string{"alice", "bob", "carol"}})
		a.must(t, http.StatusCreated, "POST", "/rooms", map[string]any{"room": "news", "kind": "chat"})
		join(t, bob, "news@conference.localhost", "bob")

		// A headline to the team: every online resource of every member.
		out := a.must(t, http.StatusOK, "POST", "/messages", map[string]any{
			"type": "headline", "to": map[string]any{"groups": []string{"t"}, "rooms": []string{"news"}}, "body": "release at 5"})
		if got := strings.Join(names(out["recipients"]), ","); got != "alice@localhost,bob@localhost,carol@localhost" {
			t.Errorf("recipients: %s", got)
		}
		alice.Expect(t, "the headline over TCP", isMessage("localhost", "headline", "release at 5"))
		web.Until(t, "the headline over "+transport, isMessage("localhost", "headline", "release at 5"))
		bob.Expect(t, "the headline", isMessage("localhost", "headline", "release at 5"))
		bob.Expect(t, "the room's announcement", isMessage("news@conference.localhost", "groupchat", "release at 5"))

		// A chat from a user who is not online.
		a.must(t, http.StatusOK, "POST", "/messages", map[string]any{"from": "carol", "to": map[string]any{"jids": []string{"bob@localhost"}}, "body": "hi"})
		bob.Expect(t, "carol's chat", isMessage("carol@localhost", "chat", "hi"))

		// An app event: to every online resource; with store, also to carol
		// at her next sign-in.
		ev := a.must(t, http.StatusOK, "POST", "/events", map[string]any{
			"to": map[string]any{"groups": []string{"t"}}, "name": "task.updated",
			"payload": map[string]any{"task": 42, "state": "done", "who": "<alice & co>"}, "store": true})
		const payload = `{"state":"done","task":42,"who":"\u003calice \u0026 co\u003e"}`
		if ev["delivered"] != 3.0 || strings.Join(names(ev["stored"]), ",") != "carol@localhost" {
			t.Errorf("event answer: %v", ev)
		}
		alice.Expect(t, "the event over TCP", isEvent("task.updated", payload))
		web.Until(t, "the event over "+transport, isEvent("task.updated", payload))
		bob.Expect(t, "the event", isEvent("task.updated", payload))
		c := a.Dial(t, jid.MustParse("carol@localhost"), "pw", "c")
		c.SendRaw(t, `<presence/>`)
		el := c.Expect(t, "the stored event", isEvent("task.updated", payload))
		if el.Child("urn:xmpp:delay", "delay") == nil {
			t.Errorf("a stored event has no delay stamp: %s", el)
		}
		// Without store, nothing waits for an account that is offline.
		a.AddUser(t, "dave", "pw")
		a.must(t, http.StatusOK, "POST", "/events", map[string]any{"to": map[string]any{"jids": []string{"dave"}}, "name": "x", "payload": 1})
		a.must(t, http.StatusNotFound, "POST", "/events", map[string]any{"to": map[string]any{"jids": []string{"nobody"}}, "name": "x", "payload": 1})
		if q, err := a.Store.OfflineMessages(t.Context(), "dave@localhost"); err != nil || len(q) != 0 {
			t.Errorf("dave's offline queue: %v, %v", q, err)
		}

		// Errors.
		a.bad(t, "type", "POST", "/messages", map[string]any{"type": "groupchat", "to": map[string]any{"jids": []string{"bob"}}, "body": "x"})
		a.bad(t, "body", "POST", "/messages", map[string]any{"to": map[string]any{"jids": []string{"bob"}}})
		a.bad(t, "to", "POST", "/messages", map[string]any{"body": "x"})
		a.bad(t, "from", "POST", "/messages", map[string]any{"from": "bob", "to": map[string]any{"rooms": []string{"news"}}, "body": "x"})
		a.bad(t, "to.jids[1]", "POST", "/messages", map[string]any{"to": map[string]any{"jids": []string{"bob", "a@b@c"}}, "body": "x"})
		a.bad(t, "to.rooms[0]", "POST", "/messages", map[string]any{"to": map[string]any{"rooms": []string{"x@elsewhere.example"}}, "body": "x"})
		a.must(t, http.StatusNotFound, "POST", "/messages", map[string]any{"from": "nobody", "to": map[string]any{"jids": []string{"bob"}}, "body": "x"})
		a.must(t, http.StatusNotFound, "POST", "/messages", map[string]any{"to": map[string]any{"groups": []string{"nope"}}, "body": "x"})
		a.must(t, http.StatusNotFound, "POST", "/messages", map[string]any{"to": map[string]any{"jids": []string{"bob"}, "rooms": []string{"nope"}}, "body": "never"})
		a.bad(t, "name", "POST", "/events", map[string]any{"to": map[string]any{"jids": []string{"bob"}}, "name": "a b", "payload": 1})
		a.bad(t, "payload", "POST", "/events", map[string]any{"to": map[string]any{"jids": []string{"bob"}}, "name": "x"})
		a.bad(t, "to.jids[0]", "POST", "/events", map[string]any{"to": map[string]any{"jids": []string{"bob@elsewhere.example"}}, "name": "x", "payload": 1})
		a.must(t, http.StatusNotFound, "POST", "/events", map[string]any{"to": map[string]any{"groups": []string{"nope"}}, "name": "x", "payload": 1})
		// A refused message sent nothing: bob's next message is the
		// marker, not "never".
		a.must(t, http.StatusOK, "POST", "/messages", map[string]any{"to": map[string]any{"jids": []string{"bob"}}, "body": "marker"})
		el = bob.Expect(t, "the marker", func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("from") == "localhost" })
		if el.Child(xmpp.NSClient, "body").Text() != "marker" {
			t.Errorf("bob got %s before the marker", el)
		}
	})
}

// TestStropheEvent: a page using strophe.js receives an app event, over
// WebSocket and over BOSH, as docs/events.md shows.
func TestStropheEvent(t *testing.T) {
	testenv.NeedWeb(t, false)
	a := startApp(t, "sqlite")
	a.AddUser(t, "alice", "pw")
	for _, tc := range []struct{ transport, url string }{
		{"websocket", a.WebSocketURL()},
		{"bosh", a.BOSHURL()},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			n := testenv.StartNode(t, "strophe.mjs", "--transport", tc.transport, "--url", tc.url,
				"--jid", "alice@localhost", "--password", "pw", "--resource", tc.transport,
				"--event", "task.updated", "--timeout", "30")
			n.Expect(t, "online", testenv.Timeout)
			a.must(t, http.StatusOK, "POST", "/events", map[string]any{
				"to": map[string]any{"jids": []string{"alice"}}, "name": "task.updated",
				"payload": map[string]any{"task": 42, "via": tc.transport}})
			ev := n.Expect(t, "app-event", testenv.Timeout)
			if p, _ := ev["payload"].(map[string]any); p["task"] != 42.0 || p["via"] != tc.transport {
				t.Errorf("strophe got %v", ev)
			}
			n.Expect(t, "done", testenv.Timeout)
			if err := n.Wait(t, testenv.Timeout); err != nil {
				t.Fatalf("strophe.mjs: %v", err)
			}
		})
	}
}
