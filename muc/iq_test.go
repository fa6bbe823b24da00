package muc_test

import (
	"strings"
	"testing"

	"github.com/xmppd/xmppd/xmpp"
)

// TestOccupantIQ: an IQ to an occupant JID reaches that occupant's client
// from the sender's occupant JID, with an id of the room's; the answer,
// result or error, comes back to the sender from the occupant JID it
// addressed, with its own id. Neither learns the other's real JID in a
// semi-anonymous room (XEP-0045 §17.4). vCard requests go to the
// occupant's bare JID; a nick that is not there is item-not-found; a
// non-occupant is refused; the self-ping keeps its own answer.
func TestOccupantIQ(t *testing.T) {
	s := start(t)
	alice, bob, carol := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "carol")
	room := "iqs@" + service
	create(t, alice, "iqs", "alice")
	join(t, bob, "iqs", "bob", "")
	bob.Expect(t, "in", presenceFrom(room+"/bob", ""))
	// bob, a participant, may not see real JIDs; alice (moderator) may,
	// but the forwarded request must not tell bob who she is either.

	isIQ := func(id string) func(*xmpp.Element) bool {
		return func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == id }
	}
	forwarded := func(what string) *xmpp.Element {
		t.Helper()
		req := bob.Expect(t, what, func(el *xmpp.Element) bool {
			return el.Local == "iq" && (el.Get("type") == "get" || el.Get("type") == "set")
		})
		if req.Get("from") != room+"/alice" || req.Get("to") != bob.JID.String() {
			t.Fatalf("%s arrives from %q to %q, want from %s/alice to %s", what, req.Get("from"), req.Get("to"), room, bob.JID)
		}
		if strings.Contains(req.String(), alice.JID.Bare().String()) {
			t.Fatalf("%s reveals the sender's real JID: %v", what, req)
		}
		return req
	}

	// A version request, answered by bob's client.
	alice.SendRaw(t, `<iq type="get" id="v1" to="`+room+`/bob"><query xmlns="jabber:iq:version"/></iq>`)
	req := forwarded("version request")
	if req.Get("id") == "v1" || req.Get("id") == "" {
		t.Errorf("forwarded with id %q: the room should give its own", req.Get("id"))
	}
	if q := req.Child("jabber:iq:version", "query"); q == nil {
		t.Fatalf("payload lost: %v", req)
	}
	bob.SendRaw(t, `<iq type="result" id="`+req.Get("id")+`" to="`+room+`/alice"><query xmlns="jabber:iq:version"><name>bobclient</name><version>1.0</version></query></iq>`)
	res := alice.Expect(t, "version answer", isIQ("v1"))
	if res.Get("type") != "result" || res.Get("from") != room+"/bob" || res.Get("to") != alice.JID.String() {
		t.Fatalf("answer %v", res)
	}
	if !strings.Contains(res.String(), "bobclient") || strings.Contains(res.String(), bob.JID.Bare().String()) {
		t.Fatalf("answer lost its payload or reveals bob: %v", res)
	}

	// An error from bob's client comes back as an error.
	alice.SendRaw(t, `<iq type="get" id="e1" to="`+room+`/bob"><query xmlns="urn:example:unknown"/></iq>`)
	req = forwarded("unknown request")
	bob.SendRaw(t, `<iq type="error" id="`+req.Get("id")+`" to="`+room+`/alice"><query xmlns="urn:example:unknown"/>`+
		`<error type="cancel" by="`+bob.JID.String()+`"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`)
	e := alice.Expect(t, "error answer", isIQ("e1"))
	if e.Get("type") != "error" || e.Get("from") != room+"/bob" || errorCondition(e) != "service-unavailable" {
		t.Fatalf("error answer %v", e)
	}
	if strings.Contains(e.String(), bob.JID.Bare().String()) {
		t.Fatalf("the error reveals bob's real JID: %v", e)
	}
	// The same answer again is dropped: the room forgot the request.
	bob.SendRaw(t, `<iq type="result" id="`+req.Get("id")+`" to="`+room+`/alice"/>`)

	// A nick that is not there. Its answer comes after anything the
	// repeated answer above could have caused, which must be nothing.
	alice.SendRaw(t, `<iq type="get" id="n1" to="`+room+`/nobody"><query xmlns="jabber:iq:version"/></iq>`)
	e = alice.Expect(t, "no such occupant", func(el *xmpp.Element) bool {
		if el.Get("id") == "e1" {
			t.Fatalf("a repeated answer was passed on: %v", el)
		}
		return isIQ("n1")(el)
	})
	if e.Get("type") != "error" || errorCondition(e) != "item-not-found" {
		t.Fatalf("to a missing nick: %v", e)
	}
	// Only occupants send requests to occupants (§6.6).
	carol.SendRaw(t, `<iq type="get" id="c1" to="`+room+`/bob"><query xmlns="jabber:iq:version"/></iq>`)
	if e := carol.Expect(t, "refused", isIQ("c1")); errorCondition(e) != "bad-request" {
		t.Fatalf("from outside the room: %v", e)
	}
	// A vCard request goes to bob's bare JID, which his server answers;
	// his client never sees it.
	alice.SendRaw(t, `<iq type="get" id="vc" to="`+room+`/bob"><vCard xmlns="vcard-temp"/></iq>`)
	if a := alice.Expect(t, "vCard answer", isIQ("vc")); a.Get("from") != room+"/bob" || (a.Get("type") != "result" && a.Get("type") != "error") {
		t.Fatalf("vCard answer %v", a)
	}
	// A ping to another occupant is forwarded like any IQ; the self-ping
	// is the room's to answer.
	alice.SendRaw(t, `<iq type="get" id="p1" to="`+room+`/bob"><ping xmlns="urn:xmpp:ping"/></iq>`)
	req = forwarded("ping")
	if req.Child("urn:xmpp:ping", "ping") == nil {
		t.Fatalf("forwarded ping: %v", req)
	}
	bob.SendRaw(t, `<iq type="result" id="`+req.Get("id")+`" to="`+room+`/alice"/>`)
	if r := alice.Expect(t, "ping answer", isIQ("p1")); r.Get("type") != "result" || r.Get("from") != room+"/bob" {
		t.Fatalf("ping answer %v", r)
	}
	alice.SendRaw(t, `<iq type="get" id="sp" to="`+room+`/alice"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if r := alice.Expect(t, "self-ping", isIQ("sp")); r.Get("type") != "result" || r.Get("from") != room+"/alice" {
		t.Fatalf("self-ping %v", r)
	}
	// Nothing reached bob but the three forwarded requests: the vCard
	// request and the repeated answer did not.
	bob.SendRaw(t, `<message type="groupchat" id="end" to="`+room+`"><body>done</body></message>`)
	bob.Expect(t, "own message", func(el *xmpp.Element) bool {
		if el.Local == "iq" {
			t.Fatalf("bob got another request: %v", el)
		}
		return el.Get("id") == "end"
	})
}
