package vcard

import (
	"testing"

	"github.com/xmppd/xmppd/xmpp"
)

func TestPhotoHash(t *testing.T) {
	for _, c := range []struct{ name, card, want string }{
		// sha1 of the 8 bytes of a PNG signature; base64 with line breaks
		// and spaces, which XEP-0153 §4.5 says to ignore.
		{"photo", `<vCard xmlns="vcard-temp"><PHOTO><BINVAL>iVBOR w0K
Ggo=</BINVAL></PHOTO></vCard>`, "4caece539b039b16e16206ea2478f8c5ffb2ca05"},
		{"no photo", `<vCard xmlns="vcard-temp"><FN>x</FN></vCard>`, ""},
		{"external", `<vCard xmlns="vcard-temp"><PHOTO><EXTVAL>https://example.com/a.png</EXTVAL></PHOTO></vCard>`, ""},
		{"not base64", `<vCard xmlns="vcard-temp"><PHOTO><BINVAL>*</BINVAL></PHOTO></vCard>`, ""},
		{"empty", `<vCard xmlns="vcard-temp"><PHOTO><BINVAL/></PHOTO></vCard>`, ""},
	} {
		card, err := xmpp.ParseElement([]byte(c.card))
		if err != nil {
			t.Fatal(err)
		}
		if got := PhotoHash(card); got != c.want {
			t.Errorf("%s: PhotoHash = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestUpdateNoAlloc: a presence that carries the hash already, the usual
// case once a client has seen its own presence, costs no allocation.
func TestUpdateNoAlloc(t *testing.T) {
	const hash = "0123456789abcdef0123456789abcdef01234567"
	p, err := xmpp.ParseElement([]byte(`<presence xmlns="jabber:client"><show>away</show>` +
		`<x xmlns="vcard-temp:x:update"><photo> ` + hash + ` </photo></x></presence>`))
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, keep := update(p, hash); !keep {
			t.Fatal("a presence with the hash is not kept")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations for a presence with the hash", allocs)
	}
	if i, keep := update(p, "ffff"); keep || i != 1 {
		t.Fatalf("update with another hash = %d, %v; want 1, false", i, keep)
	}
}
