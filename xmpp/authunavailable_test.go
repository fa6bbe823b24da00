package xmpp_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// downStore is a real store whose account lookups fail while down is set,
// as a database that went away fails them.
type downStore struct {
	storage.Store
	down atomic.Bool
}

var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func (s *downStore) Credentials(ctx context.Context, jid string) (storage.Credentials, error) {
	if s.down.Load() {
		return storage.Credentials{}, errDown
	}
	return s.Store.Credentials(ctx, jid)
}

func (s *downStore) IsMember(ctx context.Context, jid string) (bool, error) {
	if s.down.Load() {
		return false, errDown
	}
	return s.Store.IsMember(ctx, jid)
}

// While storage does not answer, every way of signing in (PLAIN, SCRAM, an
// app token) fails with <temporary-auth-failure/> (RFC 6120 §6.5.9), not
// <not-authorized/>, and none of those attempts counts towards the
// address's or the account's failure limit: with both limits at 2, six
// attempts leave the address and the account free to sign in once storage
// is back. A wrong password still counts, as before.
func TestAuthStorageUnavailable(t *testing.T) {
	var st *downStore
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		st = &downStore{Store: srv.Store}
		srv.Store = st
		srv.Tokens = apptoken.SignIn{
			Verifier: apptoken.Verifier{Secret: tokenSecret, Audience: testenv.Domain},
			Store:    st,
		}
		srv.MaxAuthFailures = 2
		srv.MaxAccountAuthFailures = 2
		srv.AuthFailureWindow = time.Hour
	})
	alice := s.AddUser(t, "alice", "alice pw")
	st.down.Store(true)

	scramFirst := `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-256">` +
		base64.StdEncoding.EncodeToString([]byte("n,,n=alice,r=abcdefghijkl")) + `</auth>`
	attempts := []struct{ name, send string }{
		{"PLAIN", testenv.PlainAuth("alice", "alice pw")},
		{"SCRAM-SHA-256", scramFirst},
		{"app token", testenv.PlainAuth("alice", appToken(t, "alice", "", time.Hour, time.Now()))},
	}
	for stream := range 2 {
		ts := s.StartTLS(t, "127.0.0.9")
		for _, a := range attempts {
			io.WriteString(ts, a.send)
			el, err := ts.Next()
			if err != nil || el.Local != "failure" || el.Child("", "temporary-auth-failure") == nil {
				t.Fatalf("stream %d, %s while storage is down: got %v, %v; want <failure><temporary-auth-failure/>", stream+1, a.name, el, err)
			}
			if text := el.Child("", "text"); text == nil || strings.Contains(text.Text(), "5432") {
				t.Errorf("%s: failure text %v: want one that says to try later and names no internals", a.name, text)
			}
		}
		ts.Close()
	}

	// The web transports end in the same negotiation (PLAIN on a secure
	// network: loopback).
	for _, tr := range testenv.WebTransports() {
		wc := s.OpenWeb(t, tr)
		wc.Send(t, testenv.PlainAuth("alice", "alice pw"))
		el := wc.Until(t, "SASL outcome", func(el *xmpp.Element) bool { return el.Local == "failure" || el.Local == "success" })
		if el.Child("", "temporary-auth-failure") == nil {
			t.Errorf("%s while storage is down: %v; want <failure><temporary-auth-failure/>", tr, el)
		}
	}

	st.down.Store(false)
	c, err := s.DialFrom(t, "127.0.0.9", alice, "alice pw", "")
	if err != nil {
		t.Fatalf("sign-in after storage came back, from the same address: %v (the outage counted as failures?)", err)
	}
	c.Close()

	// A wrong password is a failure as before: two use up the address.
	for range 2 {
		if _, err := s.DialFrom(t, "127.0.0.10", alice, "wrong", ""); err == nil {
			t.Fatal("a wrong password signed in")
		}
	}
	if _, err := s.DialFrom(t, "127.0.0.10", alice, "alice pw", ""); err == nil {
		t.Fatal("an address past its failure limit signed in: wrong passwords are no longer counted")
	}
}
