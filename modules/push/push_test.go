package push_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/push"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// enableXML is an <enable/> for the service at jid, node, with a
// publish-options form of fields (var=value), none when empty.
func enableXML(service, node string, fields ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<enable xmlns="%s" jid="%s" node="%s">`, push.NS, service, node)
	if len(fields) > 0 {
		fmt.Fprintf(&b, `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>%s</value></field>`, push.PublishOptions)
		for _, f := range fields {
			k, v, _ := strings.Cut(f, "=")
			fmt.Fprintf(&b, `<field var="%s"><value>%s</value></field>`, k, v)
		}
		b.WriteString(`</x>`)
	}
	b.WriteString(`</enable>`)
	return b.String()
}

// iq sends an IQ set with payload from d and returns its answer: an
// iq_result or an iq_error event.
func iq(t *testing.T, d *testenv.Driver, id, to, payload string) testenv.DriverEvent {
	t.Helper()
	return iqOf(t, d, "set", id, to, payload)
}

func iqOf(t *testing.T, d *testenv.Driver, typ, id, to, payload string) testenv.DriverEvent {
	t.Helper()
	d.Do(t, map[string]any{"cmd": "iq", "type": typ, "id": id, "to": to, "payload": payload})
	for {
		ev, ok := d.Next(t, testenv.Timeout+5*time.Second)
		if !ok {
			t.Fatalf("%s ended before the answer to %s", d.JID, id)
		}
		if (ev.Event == "iq_result" || ev.Event == "iq_error" || ev.Event == "iq_timeout") && ev.ID == id {
			return ev
		}
	}
}

func registrations(t *testing.T, s *testenv.Server, owner jid.JID) []storage.PushRegistration {
	t.Helper()
	regs, err := s.Store.PushRegistrations(t.Context(), owner.String())
	if err != nil {
		t.Fatal(err)
	}
	return regs
}

// TestEnableDisable: a real client (slixmpp) enables and disables push;
// what it sends wrong is refused with the errors XEP-0357 implies, and
// only the account's own clients may do either.
func TestEnableDisable(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		a := s.StartDriver(t, aj, "pw", "phone")
		b := s.StartDriver(t, bj, "pw", "pc")

		disco := iqOf(t, a, "get", "disco", "", `<query xmlns="http://jabber.org/protocol/disco#info"/>`)
		if disco.Event != "iq_result" || !strings.Contains(disco.XML, `var="`+push.NS+`"`) {
			t.Fatalf("the account's disco#info does not list %s: %+v", push.NS, disco)
		}

		for _, c := range []struct{ name, payload, condition string }{
			{"no jid", `<enable xmlns="` + push.NS + `" node="n1"/>`, "bad-request"},
			{"bad jid", `<enable xmlns="` + push.NS + `" jid="a@b@c" node="n1"/>`, "bad-request"},
			{"no node", `<enable xmlns="` + push.NS + `" jid="push.example.net"/>`, "bad-request"},
			{"wrong FORM_TYPE", strings.Replace(enableXML("push.example.net", "n1", "secret=s"), push.PublishOptions, "urn:example:other", 1), "bad-request"},
			{"body flag not a boolean", enableXML("push.example.net", "n1", push.BodyField+"=maybe"), "bad-request"},
			{"disable without jid", `<disable xmlns="` + push.NS + `" node="n1"/>`, "bad-request"},
		} {
			ev := iq(t, a, "bad-"+strings.ReplaceAll(c.name, " ", "-"), "", c.payload)
			if ev.Event != "iq_error" || ev.Condition != c.condition {
				t.Errorf("%s: %+v, want an error %s", c.name, ev, c.condition)
			}
		}
		if regs := registrations(t, s, aj); len(regs) != 0 {
			t.Fatalf("refused requests stored %+v", regs)
		}
		// Someone else may not enable push on alice's account.
		if ev := iq(t, b, "other", aj.String(), enableXML("push.example.net", "evil")); ev.Event != "iq_error" || ev.Condition != "forbidden" {
			t.Fatalf("bob enabling push for alice: %+v, want forbidden", ev)
		}

		for i, p := range []string{
			enableXML("push.example.net", "n1", "secret=one"),
			enableXML("push.example.net", "n2"),
			enableXML("push.example.net", "n1", "secret=two", push.BodyField+"=true"), // replaces n1
			enableXML("other.example.org", "x"),
		} {
			if ev := iq(t, a, fmt.Sprint("en", i), "", p); ev.Event != "iq_result" {
				t.Fatalf("enable %d: %+v", i, ev)
			}
		}
		want := []storage.PushRegistration{
			{JID: "other.example.org", Node: "x"},
			{JID: "push.example.net", Node: "n1", Fields: []storage.PushField{
				{Var: "secret", Values: []string{"two"}}, {Var: push.BodyField, Values: []string{"true"}}}},
			{JID: "push.example.net", Node: "n2"},
		}
		if got := registrations(t, s, aj); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("registrations = %+v, want %+v", got, want)
		}
		if ev := iq(t, a, "dis1", "", `<disable xmlns="`+push.NS+`" jid="push.example.net" node="n2"/>`); ev.Event != "iq_result" {
			t.Fatalf("disable one node: %+v", ev)
		}
		if got := registrations(t, s, aj); len(got) != 2 || got[1].Node != "n1" {
			t.Fatalf("after disabling n2: %+v", got)
		}
		if ev := iq(t, a, "dis2", "", `<disable xmlns="`+push.NS+`" jid="push.example.net"/>`); ev.Event != "iq_result" {
			t.Fatalf("disable a service: %+v", ev)
		}
		if got := registrations(t, s, aj); len(got) != 1 || got[0].JID != "other.example.org" {
			t.Fatalf("after disabling push.example.net: %+v", got)
		}
		// Again: nothing to disable is still what the client wants.
		if ev := iq(t, a, "dis3", "", `<disable xmlns="`+push.NS+`" jid="push.example.net"/>`); ev.Event != "iq_result" {
			t.Fatalf("disable again: %+v", ev)
		}
	})
}

// publishes reads d's events until n publishes came, and returns them by
// node; it fails on a second publish to one node, and ignores other
// events.
func publishes(t *testing.T, d *testenv.Driver, n int) map[string]testenv.DriverEvent {
	t.Helper()
	got := make(map[string]testenv.DriverEvent)
	for len(got) < n {
		ev, ok := d.Next(t, testenv.Timeout+5*time.Second)
		if !ok {
			t.Fatalf("the app server ended after %d of %d publishes", len(got), n)
		}
		if ev.Event != "publish" {
			continue
		}
		if prev, dup := got[ev.Node]; dup {
			t.Fatalf("two publishes to node %s where one was due:\n%s\n%s", ev.Node, prev.XML, ev.XML)
		}
		got[ev.Node] = ev
	}
	return got
}

// checkNotification checks one publish: from the account, the summary's
// count and sender, the body only when wanted, and the client's
// publish-options without the field meant for the server.
func checkNotification(t *testing.T, ev testenv.DriverEvent, from jid.JID, count int, sender jid.JID, body string, secret string) {
	t.Helper()
	sum := ev.Summary
	if ev.From != from.String() {
		t.Errorf("publish from %q, want the account %s", ev.From, from)
	}
	if sum["FORM_TYPE"] != push.NSSummary || sum["message-count"] != fmt.Sprint(count) || sum["last-message-sender"] != sender.String() {
		t.Errorf("summary %v, want count %d from %s\n%s", sum, count, sender, ev.XML)
	}
	if b, ok := sum["last-message-body"]; body == "" && ok || body != "" && b != body {
		t.Errorf("last-message-body = %q (sent: %v), want %q\n%s", b, ok, body, ev.XML)
	}
	wantOpts := map[string][]string{"FORM_TYPE": {push.PublishOptions}, "secret": {secret}}
	if fmt.Sprint(ev.Options) != fmt.Sprint(wantOpts) {
		t.Errorf("publish-options %v, want %v", ev.Options, wantOpts)
	}
}

// TestNotifications is the scenario, with real clients: slixmpp as
// the account (stream management, its connection cut without a close) and
// slixmpp as the app server's pubsub service, a local account whose full
// JID is the push JID. Two nodes are enabled, one asking for bodies; each
// new message gives one notification per node, with a count that grows
// until the client resumes; then offline (no session at all), disabling,
// and an error answer that disables the registration.
func TestNotifications(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj, pj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "pushsvc", "pw")
		app := s.StartDriver(t, pj, "pw", "svc")
		pubsubService(t, app, "")
		bob := s.Dial(t, bj, "pw", "b")
		chat := func(n int, extra string) {
			bob.SendRaw(t, fmt.Sprintf(`<message to="%s" type="chat" id="m%d"><body>hello %d</body>%s</message>`, aj, n, n, extra))
		}

		a := s.StartDriver(t, aj, "pw", "phone", "--sm")
		a.Expect(t, "sm_enabled", nil)
		for i, p := range []string{
			enableXML(app.JID.String(), "with-body", "secret=s1", push.BodyField+"=1"),
			enableXML(app.JID.String(), "no-body", "secret=s2"),
		} {
			if ev := iq(t, a, fmt.Sprint("en", i), "", p); ev.Event != "iq_result" {
				t.Fatalf("enable: %+v", ev)
			}
		}
		a.Do(t, map[string]any{"cmd": "presence"})
		a.Expect(t, "presence", nil) // its own, back: it is available
		chat(0, "")
		a.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "hello 0" })

		cut := func() {
			t.Helper()
			a.Do(t, map[string]any{"cmd": "cut"})
			a.Expect(t, "cut", nil)
			waitFor(t, "alice's session to hibernate", func() bool {
				sess := s.SessionOf(a.JID)
				return sess != nil && sess.Hibernated()
			})
		}
		cut()
		for n := 1; n <= 3; n++ {
			if n == 3 {
				// A chat state alone is not worth a notification: it
				// neither counts nor publishes (the next message is the
				// barrier: its count would be one more).
				bob.SendRaw(t, fmt.Sprintf(`<message to="%s" type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`, aj))
			}
			chat(n, "")
			got := publishes(t, app, 2)
			checkNotification(t, got["with-body"], aj, n, bj, fmt.Sprint("hello ", n), "s1")
			checkNotification(t, got["no-body"], aj, n, bj, "", "s2")
		}

		// The client comes back: the count starts again.
		a.Do(t, map[string]any{"cmd": "resume"})
		a.Expect(t, "resumed", nil)
		a.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "hello 3" })
		cut()
		chat(4, "")
		got := publishes(t, app, 2)
		checkNotification(t, got["no-body"], aj, 1, bj, "", "s2")

		// No session at all: the message goes to offline storage, and the
		// notification says so all the same.
		a.Do(t, map[string]any{"cmd": "resume"})
		a.Expect(t, "resumed", nil)
		a.Do(t, map[string]any{"cmd": "quit"})
		a.Wait(t)
		waitFor(t, "alice's session to end", func() bool { return len(s.SessionsOf(aj)) == 0 })
		chat(5, "")
		got = publishes(t, app, 2)
		checkNotification(t, got["with-body"], aj, 1, bj, "hello 5", "s1")
		chat(6, "")
		got = publishes(t, app, 2)
		checkNotification(t, got["no-body"], aj, 2, bj, "", "s2")
		// The notification goes before the message is stored.
		waitFor(t, "the two messages sent while alice was away to be stored", func() bool {
			msgs, err := s.Store.OfflineMessages(t.Context(), aj.String())
			if err != nil {
				t.Fatal(err)
			}
			return len(msgs) == 2
		})

		// Disabling one node stops its notifications, not the other's: the
		// next two messages publish to no-body alone.
		a2 := s.StartDriver(t, aj, "pw", "laptop")
		if ev := iq(t, a2, "dis", "", `<disable xmlns="`+push.NS+`" jid="`+app.JID.String()+`" node="with-body"/>`); ev.Event != "iq_result" {
			t.Fatalf("disable: %+v", ev)
		}
		a2.Do(t, map[string]any{"cmd": "quit"})
		a2.Wait(t)
		waitFor(t, "alice's second session to end", func() bool { return len(s.SessionsOf(aj)) == 0 })
		for n := 7; n <= 8; n++ {
			chat(n, "")
			got = publishes(t, app, 1)
			if _, ok := got["no-body"]; !ok {
				t.Fatalf("after disabling with-body, a publish to %v", slices.Collect(mapKeys(got)))
			}
		}

		// The app server answers with an error: the registration is
		// disabled (XEP-0357 §7.1), and nothing more is published.
		pubsubService(t, app, "item-not-found")
		chat(9, "")
		publishes(t, app, 1)
		waitFor(t, "the registration to be disabled", func() bool { return len(registrations(t, s, aj)) == 0 })
		pubsubService(t, app, "")
		chat(10, "")
		app.ExpectNone(t, "publish", nil, time.Second)
	})
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// waitFor polls cond every 10 ms for up to testenv.Timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testenv.Timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// TestRoomMention: a groupchat message in a room of the server's MUC
// service that names a member who is not in the room, by reserved nick or
// username, wakes that member's client; one that does not name them (or
// names them only inside a longer word) does not.
func TestRoomMention(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend, func(srv *xmpp.Server) {
			srv.Modules = modules.Default(modules.Options{Store: srv.Store, MUC: true})
		})
		aj, bj, pj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "pushsvc", "pw")
		room := "team@conference." + testenv.Domain
		ctx := t.Context()
		if err := s.Store.SaveRoom(ctx, storage.Room{JID: room, Config: muc.GroupConfig("Team")}); err != nil {
			t.Fatal(err)
		}
		for _, a := range []storage.Affiliation{
			{JID: aj.String(), Affiliation: storage.AffMember, Nick: "Ali"},
			{JID: bj.String(), Affiliation: storage.AffMember},
		} {
			if err := s.Store.SetAffiliation(ctx, room, a); err != nil {
				t.Fatal(err)
			}
		}
		app := s.StartDriver(t, pj, "pw", "svc")
		pubsubService(t, app, "")
		a := s.StartDriver(t, aj, "pw", "phone")
		if ev := iq(t, a, "en", "", enableXML(app.JID.String(), "n", "secret=s", push.BodyField+"=1")); ev.Event != "iq_result" {
			t.Fatalf("enable: %+v", ev)
		}
		a.Do(t, map[string]any{"cmd": "quit"})
		a.Wait(t)
		waitFor(t, "alice's session to end", func() bool { return len(s.SessionsOf(aj)) == 0 })

		bob := s.Dial(t, bj, "pw", "b")
		bob.SendRaw(t, `<presence to="`+room+`/bob"><x xmlns="`+muc.NS+`"/></presence>`)
		bob.Expect(t, "in the room", func(el *xmpp.Element) bool {
			return el.Local == "presence" && el.Get("from") == room+"/bob"
		})
		say := func(body string) {
			bob.SendRaw(t, `<message to="`+room+`" type="groupchat"><body>`+body+`</body></message>`)
			bob.Expect(t, "the echo", func(el *xmpp.Element) bool {
				b := el.Child(xmpp.NSClient, "body")
				return el.Local == "message" && b != nil && b.Text() == body
			})
		}
		say("hi @ali, are you there?") // by reserved nick, any case
		checkNotification(t, publishes(t, app, 1)["n"], aj, 1, jid.MustParse(room+"/bob"), "hi @ali, are you there?", "s")
		say("nothing for alicex or Alibaba") // no one
		say("alice: lunch?")                 // by username
		checkNotification(t, publishes(t, app, 1)["n"], aj, 2, jid.MustParse(room+"/bob"), "alice: lunch?", "s")
	})
}

// TestRemoteAppServer: the app server is on another domain; the
// notification goes over server-to-server, and its answers come back the
// same way: a result keeps the registration, an error disables it. The
// app server is the test's own client on the other server (slixmpp checks
// the certificate's name, which the test servers share).
func TestRemoteAppServer(t *testing.T) {
	s, remote := testenv.StartPair(t, "sqlite", "push.test")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	app := remote.Dial(t, remote.AddUser(t, "pushsvc", "pw"), "pw", "svc")
	a := s.StartDriver(t, aj, "pw", "phone")
	if ev := iq(t, a, "en", "", enableXML(app.JID.String(), "n", "secret=s")); ev.Event != "iq_result" {
		t.Fatalf("enable: %+v", ev)
	}
	a.Do(t, map[string]any{"cmd": "quit"})
	a.Wait(t)
	waitFor(t, "alice's session to end", func() bool { return len(s.SessionsOf(aj)) == 0 })
	bob := s.Dial(t, bj, "pw", "b")
	publish := func(body, answer string) {
		t.Helper()
		bob.SendRaw(t, `<message to="`+aj.String()+`" type="chat"><body>`+body+`</body></message>`)
		el := app.Expect(t, "a publish", func(el *xmpp.Element) bool {
			return el.Local == "iq" && el.Child(push.NSPubSub, "pubsub") != nil
		})
		pub := el.Child(push.NSPubSub, "pubsub").Child(push.NSPubSub, "publish")
		if el.Get("from") != aj.String() || el.Get("type") != "set" || pub == nil || pub.Get("node") != "n" {
			t.Fatalf("publish over s2s: %s", el)
		}
		app.SendRaw(t, `<iq type="`+answer+`" id="`+el.Get("id")+`" to="`+aj.String()+`">`+
			map[string]string{"result": "", "error": `<error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>`}[answer]+`</iq>`)
	}
	publish("over there", "result")
	// The next notification goes only once the first is answered (or
	// after 30 s, beyond the helpers' wait): its coming proves that the
	// result found its way back. Its error answer disables the
	// registration.
	publish("again", "error")
	waitFor(t, "the registration to be disabled", func() bool { return len(registrations(t, s, aj)) == 0 })
}

// pubsubService makes the driver app act as a pubsub service that answers
// publishes with condition ("" for a result), and waits until it does: a
// publish routed meanwhile must not meet the previous mode.
func pubsubService(t *testing.T, app *testenv.Driver, condition string) {
	t.Helper()
	app.Do(t, map[string]any{"cmd": "pubsub_service", "error": condition})
	app.Expect(t, "pubsub_service", nil)
}
