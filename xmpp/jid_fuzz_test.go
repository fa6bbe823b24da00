package xmpp

import (
	"testing"
)

// FuzzJID checks the JIDs the server takes from the wire (RFC 7622, with
// PRECIS; ParseAddress): a JID that parses is in its canonical form once written out, so
// that two spellings of one address are one key in the router, the
// registry and storage, and it is no longer than the RFC allows.
func FuzzJID(f *testing.F) {
	for _, seed := range []string{
		"alice@localhost", "Alice@LocalHost/Phone", "a@b/c/d", "b", "@b", "a@", "a@b/",
		"ǅ@example.com", "\u212b@example.com", "user@[::1]", "user@127.0.0.1/r",
		"x@xn--bcher-kva.example", "x@bücher.example", "\u00a0@a", "a@b.c.", "\"quoted\"@a",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseAddress(s)
		if err != nil {
			return
		}
		again, err := ParseAddress(j.String())
		if err != nil {
			t.Fatalf("%q parsed as %q, which does not parse: %v", s, j, err)
		}
		if again.String() != j.String() || !again.Equal(j) {
			t.Fatalf("%q parsed as %q, then as %q", s, j, again)
		}
		if len(j.Localpart()) > 1023 || len(j.Domainpart()) > 1023 || len(j.Resourcepart()) > 1023 {
			t.Fatalf("%q: a part longer than 1023 bytes", s)
		}
	})
}
