package xmpp

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"testing"
)

// FuzzWebSocketFrame fuzzes the RFC 7395 framing of what a WebSocket client
// sends: <open/> becomes a stream header the session's parser reads as
// one, <close/> the stream's end, anything else passes unchanged to the
// byte-level guard; nothing panics, and the client never chooses the
// stream id.
func FuzzWebSocketFrame(f *testing.F) {
	for _, seed := range []string{
		`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`,
		`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0" xml:lang="en" id="mine" from="a@b"/>`,
		`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`,
		` <open xmlns="jabber:client" to="localhost"/>`,
		`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="a&quot;b&lt;" version="1.0">`,
		`<opening/>`, `<open`, `<close>`, `<message to="a@b"><body>x</body></message>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, err := translateFrame(msg)
		if err != nil {
			if _, ok := err.(StreamError); !ok {
				if _, ok := err.(*xml.SyntaxError); !ok {
					t.Fatalf("%q: error %T %v is neither a stream error nor a syntax error", msg, err, err)
				}
			}
			return
		}
		switch {
		case bytes.Equal(out, msg):
			return // passed on to the guard as it is
		case string(out) == "</stream:stream>":
			return
		}
		d := xml.NewDecoder(bytes.NewReader(out))
		tok, err := d.Token()
		for err == nil {
			if _, ok := tok.(xml.StartElement); ok {
				break
			}
			tok, err = d.Token()
		}
		start, ok := tok.(xml.StartElement)
		if err != nil || !ok || start.Name.Local != "stream" || start.Name.Space != NSStream {
			t.Fatalf("%q became %q, not a stream header: %v", msg, out, err)
		}
		var h StreamHeader
		h.setAttrs(start.Attr)
		if h.ID != "" {
			t.Fatalf("%q: the client chose the stream id %q", msg, h.ID)
		}
		if again := AppendStreamOpen(nil, h); !bytes.Equal(again, out) {
			t.Fatalf("%q: the header %q does not read back as itself (%q)", msg, out, again)
		}
	})
}

// FuzzStreamSplitter fuzzes the splitter that turns the server's output into
// WebSocket messages and BOSH bodies: nothing panics, and where the bytes
// are cut between two writes changes nothing in the parts.
func FuzzStreamSplitter(f *testing.F) {
	for _, seed := range []string{
		`<?xml version='1.0'?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" id="x" from="localhost" version="1.0" xml:lang="en"><stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>`,
		`<message to="a@b" from="c@d/e"><body>a &lt; b</body></message><presence/></stream:stream>`,
		`<stream:error><not-well-formed xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error></stream:stream>`,
		`<iq type="result" id="1"><query xmlns="jabber:iq:roster"><item jid="a@b" name="a/&gt;"/></query></iq>`,
		`<a x='>'/><b>`, `</x>`, `<`, `<a/`,
	} {
		f.Add([]byte(seed), uint16(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		k := int(cut) % (len(data) + 1)
		whole := splitParts(data)
		parts := splitParts(data[:k], data[k:])
		if whole != parts {
			t.Fatalf("%q cut at %d:\nwhole %s\ncut   %s", data, k, whole, parts)
		}
	})
}

// splitParts writes chunks to a StreamSplitter and describes the parts.
func splitParts(chunks ...[]byte) string {
	var sp StreamSplitter
	var b bytes.Buffer
	for _, c := range chunks {
		sp.Write(c, func(p StreamPart) error {
			switch p.Kind {
			case PartHeader:
				fmt.Fprintf(&b, "header %+v\n", p.Header)
			case PartElement:
				fmt.Fprintf(&b, "element %q\n", p.AppendElement(nil))
			default:
				fmt.Fprintf(&b, "kind %d\n", p.Kind)
			}
			return nil
		})
	}
	return b.String()
}
