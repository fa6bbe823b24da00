package vcard_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/vcard"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// subscribeBoth gives a and b a mutual subscription through storage.
func subscribeBoth(t *testing.T, s *testenv.Server, a, b jid.JID) {
	t.Helper()
	for _, p := range [][2]jid.JID{{a, b}, {b, a}} {
		err := s.Store.PutRosterItem(context.Background(), p[0].String(),
			storage.RosterItem{Contact: p[1].String(), Subscription: storage.SubBoth}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// sha1Hex is the hash XEP-0153 §3.1 puts in presence for base64 image
// data, computed here on its own.
func sha1Hex(t *testing.T, b64 string) string {
	t.Helper()
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(data)
	return hex.EncodeToString(sum[:])
}

func photoCard(b64 string) string {
	return `<vCard xmlns="vcard-temp"><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>` +
		b64 + `</BINVAL></PHOTO></vCard>`
}

// photo returns the hash in a presence's update element, and how many
// update elements it has; "-" when its one update element has no <photo/>.
func photo(p *xmpp.Element) (string, int) {
	n, hash := 0, ""
	for _, x := range p.Elements() {
		if x.Space != vcard.NSUpdate || x.Local != "x" {
			continue
		}
		n++
		if ph := x.Child(vcard.NSUpdate, "photo"); ph != nil {
			hash = strings.TrimSpace(ph.Text())
		} else {
			hash = "-"
		}
	}
	return hash, n
}

// expectPhoto waits for available presence from `from` carrying hash in
// one update element (the first presence from `from` must have it).
func expectPhoto(t *testing.T, c *testenv.Client, from, hash string) *xmpp.Element {
	t.Helper()
	p := c.Expect(t, "presence of "+from, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == from && el.Get("type") == ""
	})
	if got, n := photo(p); got != hash || n != 1 {
		t.Fatalf("%s got presence of %s with photo %q in %d update elements, want %q in one: %s", c.JID, from, got, n, hash, p)
	}
	return p
}

// expectPhotos waits for available presence from each of want's JIDs, in
// any order, each carrying the hash want gives it, and returns them.
func expectPhotos(t *testing.T, c *testenv.Client, want map[string]string) map[string]*xmpp.Element {
	t.Helper()
	left := len(want)
	seen := make(map[string]*xmpp.Element)
	for left > 0 {
		p := c.Expect(t, "presence", func(el *xmpp.Element) bool {
			_, ok := want[el.Get("from")]
			return el.Local == "presence" && el.Get("type") == "" && ok && seen[el.Get("from")] == nil
		})
		from := p.Get("from")
		if got, n := photo(p); got != want[from] || n != 1 {
			t.Fatalf("%s got presence of %s with photo %q in %d update elements, want %q in one: %s", c.JID, from, got, n, want[from], p)
		}
		seen[from] = p
		left--
	}
	return seen
}

// TestAvatarHash: the server puts the account's vCard photo hash in its
// available presence (XEP-0153 as XEP-0398 §4 has the server do it): an
// empty <photo/> without a photo, the hash once the vCard has one, sent
// again to the contact and the account's resources at once; a client's
// own update element replaced unless it says <photo/> itself; directed
// presence too; and read again from storage after the account's sessions
// have all gone.
func TestAvatarHash(t *testing.T) {
	const png = "iVBORw0KGgo="
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		st := testenv.OpenStore(t, backend)
		s := start(t, backend, st)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		subscribeBoth(t, s, aj, bj)
		hash := sha1Hex(t, png)

		b := s.Dial(t, bj, "pw", "b")
		b.SendRaw(t, `<presence/>`)
		a1 := s.Dial(t, aj, "pw", "a1")
		a1.SendRaw(t, `<presence/>`)
		a1full := a1.JID.String()

		// No vCard: "no avatar" (XEP-0153 §4.1 rule 3).
		expectPhoto(t, b, a1full, "")
		expectPhoto(t, a1, a1full, "")

		// A second resource, without a photo yet either.
		a2 := s.Dial(t, aj, "pw", "a2")
		a2full := a2.JID.String()
		a2.SendRaw(t, `<presence/>`)
		expectPhoto(t, b, a2full, "")
		expectPhoto(t, a1, a2full, "")
		expectPhoto(t, a2, a1full, "")

		// The vCard gets a photo: the contact and the account's other
		// resource get a1's presence again with the hash, unchanged but
		// for it.
		a1.SendRaw(t, `<presence><status>here</status></presence>`)
		expectPhoto(t, b, a1full, "")
		expectPhoto(t, a2, a1full, "")
		if res := a1.IQ(t, "set", "", photoCard(png)); res.Get("type") != "result" {
			t.Fatalf("set: %s", res)
		}
		// Both resources' presence, for the contact and both resources
		// (a1's own: before the IQ's result, which a1.IQ skips).
		both := map[string]string{a1full: hash, a2full: hash}
		for _, c := range []*testenv.Client{b, a2} {
			expectPhotos(t, c, both)
		}
		// What was sent again is what a1 had sent, with the hash, and
		// what the server answers probes with now.
		b.SendRaw(t, `<presence type="probe" to="`+aj.String()+`"/>`)
		p := expectPhotos(t, b, both)[a1full]
		if st := p.Child("", "status"); st == nil || st.Text() != "here" {
			t.Fatalf("the presence sent again lost its status: %s", p)
		}

		// The client's own hash is replaced, for the contact and the
		// other resource.
		a2.SendRaw(t, `<presence><x xmlns="vcard-temp:x:update"><photo>`+strings.Repeat("0", 40)+`</photo></x></presence>`)
		expectPhoto(t, b, a2full, hash)
		expectPhoto(t, a1, a2full, hash)
		// "Not ready" (no <photo/>) is overwritten too (XEP-0398 §4).
		a2.SendRaw(t, `<presence><x xmlns="vcard-temp:x:update"/></presence>`)
		expectPhoto(t, b, a2full, hash)
		// A client's own <photo/> is left alone (XEP-0398 §4).
		a2.SendRaw(t, `<presence><x xmlns="vcard-temp:x:update"><photo/></x></presence>`)
		expectPhoto(t, b, a2full, "")

		// Directed presence, as a chat room join, gets it too.
		c := s.Dial(t, s.AddUser(t, "carol", "pw"), "pw", "c")
		a1.SendRaw(t, `<presence to="`+c.JID.String()+`"/>`)
		expectPhoto(t, c, a1full, hash)

		// Setting the same photo again sends nothing: the next presence
		// the contact gets is the one a1 sends after.
		if res := a1.IQ(t, "set", "", photoCard(png)); res.Get("type") != "result" {
			t.Fatalf("set: %s", res)
		}
		a1.SendRaw(t, `<presence><status>same</status></presence>`)
		p = expectPhoto(t, b, a1full, hash)
		if st := p.Child("", "status"); st == nil || st.Text() != "same" {
			t.Fatalf("setting the same photo sent presence again: %s", p)
		}

		// The vCard removed: no avatar, at once.
		if res := a1.IQ(t, "set", "", `<vCard xmlns="vcard-temp"/>`); res.Get("type") != "result" {
			t.Fatalf("empty set: %s", res)
		}
		expectPhoto(t, b, a1full, "")

		// Every session of alice gone, a photo stored behind the server's
		// back is what her next sign-in advertises: nothing was kept.
		a1.Close()
		a2.Close()
		gone := map[string]bool{}
		for len(gone) < 2 {
			p := b.Expect(t, "alice's unavailable presence", func(el *xmpp.Element) bool {
				f := el.Get("from")
				return el.Local == "presence" && (f == a1full || f == a2full) && el.Get("type") == "unavailable"
			})
			gone[p.Get("from")] = true
		}
		const other = "R0lGODlhAQABAAAAACw="
		if err := st.PutXMLDoc(context.Background(), aj.String(), vcard.Key, []byte(photoCard(other)), storage.XMLDocLimits{}); err != nil {
			t.Fatal(err)
		}
		a3 := s.Dial(t, aj, "pw", "a3")
		a3.SendRaw(t, `<presence/>`)
		expectPhoto(t, b, a3.JID.String(), sha1Hex(t, other))
	})
}

// Another node of a cluster says that alice's avatar changed (she set her
// vCard there): her session here announces the new hash to her contact at
// once; a hash that is not a SHA-1 one changes nothing.
func TestAvatarHashFromAnotherNode(t *testing.T) {
	st := testenv.OpenStore(t, "sqlite")
	s := start(t, "sqlite", st)
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	subscribeBoth(t, s, aj, bj)
	b := s.Dial(t, bj, "pw", "b")
	b.SendRaw(t, `<presence/>`)
	a := s.Dial(t, aj, "pw", "a")
	a.SendRaw(t, `<presence/>`)
	expectPhoto(t, b, a.JID.String(), "")
	expectPhoto(t, a, a.JID.String(), "")

	op := func(hash string) []byte {
		return xmpp.NewElement(xmpp.NSCluster, "vcard-avatar", "owner", aj.String(), "hash", hash).Bytes(xmpp.NSClient)
	}
	ctx := context.Background()
	if err := s.Receive(ctx, op("not a hash")); err != nil {
		t.Fatal(err)
	}
	hash := sha1Hex(t, "iVBORw0KGgo=")
	if err := s.Receive(ctx, op(strings.ToUpper(hash))); err != nil {
		t.Fatal(err)
	}
	// The first presence bob gets since is the one with the hash: the
	// bad one sent nothing.
	expectPhoto(t, b, a.JID.String(), hash)
	expectPhoto(t, a, a.JID.String(), hash)
}
