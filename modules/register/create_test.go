package register_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/register"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// preIQ sends an IQ on a stream that has not signed in and returns the
// answer.
func preIQ(t *testing.T, ts *testenv.TLSStream, typ, payload string) *xmpp.Element {
	t.Helper()
	id := fmt.Sprintf("p%d", seq.Add(1))
	io.WriteString(ts, `<iq type="`+typ+`" id="`+id+`"><query xmlns="`+register.NS+`">`+payload+`</query></iq>`)
	el, err := ts.Next()
	if err != nil {
		t.Fatalf("answer to %s: %v", id, err)
	}
	if el.Local != "iq" || el.Get("id") != id {
		t.Fatalf("answer to %s: got %s", id, el)
	}
	return el
}

func offered(ts *testenv.TLSStream) bool {
	return ts.Features.Child(register.NSFeature, "register") != nil
}

func startWith(t *testing.T, backend string, c register.Creation) *testenv.Server {
	return testenv.Start(t, backend, func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, Registration: c})
	})
}

func userPass(user, password string) string {
	return `<username>` + user + `</username><password>` + password + `</password>`
}

func exists(t *testing.T, s *testenv.Server, local string) bool {
	t.Helper()
	_, err := s.Store.Credentials(context.Background(), local+"@"+testenv.Domain)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestCreationOff: by default the feature is not offered and a
// registration is refused with <not-allowed/>, creating nothing.
func TestCreationOff(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		ts := s.StartTLS(t, "127.0.0.1")
		if offered(ts) {
			t.Fatalf("registration offered while off: %s", ts.Features)
		}
		expectCondition(t, preIQ(t, ts, "get", ""), xmpp.NotAllowed)
		expectCondition(t, preIQ(t, ts, "set", userPass("carol", "pw")), xmpp.NotAllowed)
		if exists(t, s, "carol") {
			t.Fatal("an account was created while registration is off")
		}
	})
}

// TestCreationLimited: switched on, a client reads the form, registers and
// signs in on the same stream (§3.1); a second account from the same
// address within the window is refused with <resource-constraint/>, one
// from another address is not; a taken name is a <conflict/> that does not
// count against the limit.
func TestCreationLimited(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := startWith(t, backend, register.Creation{Enabled: true, PerAddress: 1, Window: time.Hour})
		ts := s.StartTLS(t, "127.0.0.2")
		if !offered(ts) {
			t.Fatalf("registration not offered: %s", ts.Features)
		}
		form := preIQ(t, ts, "get", "")
		q := form.Child(register.NS, "query")
		if form.Get("type") != "result" || q == nil || q.Child(register.NS, "username") == nil || q.Child(register.NS, "password") == nil {
			t.Fatalf("registration form: %s", form)
		}
		if got := preIQ(t, ts, "set", userPass("carol", "carol's pw")); got.Get("type") != "result" {
			t.Fatalf("registration: %s", got)
		}
		// Then sign in on the same stream.
		ts.Authenticate(t, "carol", "carol's pw")
		if !canLogin(t, s, jid.MustParse("carol@"+testenv.Domain), "carol's pw") {
			t.Fatal("the new account does not sign in")
		}

		ts = s.StartTLS(t, "127.0.0.2")
		expectCondition(t, preIQ(t, ts, "set", userPass("dave", "pw")), xmpp.ResourceConstraintC)
		if exists(t, s, "dave") {
			t.Fatal("an account beyond the address's limit was created")
		}

		ts = s.StartTLS(t, "127.0.0.3")
		expectCondition(t, preIQ(t, ts, "set", userPass("carol", "other")), xmpp.ConflictCond)
		expectCondition(t, preIQ(t, ts, "set", userPass("", "pw")), xmpp.NotAcceptable)
		if got := preIQ(t, ts, "set", userPass("dave", "pw")); got.Get("type") != "result" {
			t.Fatalf("registration from another address: %s", got)
		}
		if !canLogin(t, s, jid.MustParse("carol@"+testenv.Domain), "carol's pw") {
			t.Fatal("carol's password changed by the conflicting registration")
		}
		if err := s.DialMech(jid.MustParse("dave@"+testenv.Domain), "pw", sasl.ScramSha256); err != nil {
			t.Fatalf("dave signs in: %v", err)
		}
	})
}

// TestCreationInvite: with invitations required, a registration without
// one is <not-acceptable/>, with an unknown, used or expired one
// <forbidden/>, and each invitation makes one account.
func TestCreationInvite(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := startWith(t, backend, register.Creation{Enabled: true, PerAddress: -1, RequireInvite: true})
		ctx := context.Background()
		token, hash := register.NewToken()
		if err := s.Store.CreateInvite(ctx, hash, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		old, oldHash := register.NewToken()
		if err := s.Store.CreateInvite(ctx, oldHash, time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		formWith := func(user, tok string) string {
			return `<x xmlns="jabber:x:data" type="submit">` +
				`<field var="FORM_TYPE" type="hidden"><value>` + register.NS + `</value></field>` +
				`<field var="username"><value>` + user + `</value></field>` +
				`<field var="password"><value>pw</value></field>` +
				`<field var="token"><value>` + tok + `</value></field></x>`
		}

		ts := s.StartTLS(t, "127.0.0.1")
		form := preIQ(t, ts, "get", "")
		if x := form.Child(register.NS, "query").Child("jabber:x:data", "x"); x == nil || !containsField(x, "token") {
			t.Fatalf("the form asks for no invitation: %s", form)
		}
		expectCondition(t, preIQ(t, ts, "set", userPass("erin", "pw")), xmpp.NotAcceptable)
		expectCondition(t, preIQ(t, ts, "set", formWith("erin", "not-a-token")), xmpp.Forbidden)
		expectCondition(t, preIQ(t, ts, "set", formWith("erin", old)), xmpp.Forbidden)
		if exists(t, s, "erin") {
			t.Fatal("an account was created without a good invitation")
		}
		if got := preIQ(t, ts, "set", formWith("erin", token)); got.Get("type") != "result" {
			t.Fatalf("registration with an invitation: %s", got)
		}
		ts = s.StartTLS(t, "127.0.0.1")
		expectCondition(t, preIQ(t, ts, "set", formWith("frank", token)), xmpp.Forbidden)
		if exists(t, s, "frank") || !exists(t, s, "erin") {
			t.Fatal("an invitation made two accounts, or none")
		}
	})
}

func containsField(x *xmpp.Element, name string) bool {
	for _, f := range x.Elements() {
		if f.Local == "field" && f.Get("var") == name {
			return true
		}
	}
	return false
}

// TestFormThenSignIn: a client that reads the form and then signs in
// instead of registering has its stream ended with <policy-violation/>
// saying to sign in on a new stream (mellium negotiates a feature once;
// see xmpp.PreAuthIQ); it can, there.
func TestFormThenSignIn(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := startWith(t, backend, register.Creation{Enabled: true})
		aj := s.AddUser(t, "alice", "pw")
		ts := s.StartTLS(t, "127.0.0.1")
		if got := preIQ(t, ts, "get", ""); got.Get("type") != "result" {
			t.Fatalf("form: %s", got)
		}
		io.WriteString(ts, testenv.PlainAuth("alice", "pw"))
		if el, err := ts.Next(); err == nil || !strings.Contains(err.Error(), "policy-violation") {
			t.Fatalf("sign-in after the form: %v, %v; want a policy-violation stream error", el, err)
		}
		if !canLogin(t, s, aj, "pw") {
			t.Fatal("alice cannot sign in on a new stream")
		}
	})
}
