package xmpp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"strconv"
	"testing"

	"github.com/xmppd/xmppd/xmpp"
)

// TestStreamSplitter: the server's stream comes apart into the same parts
// however its bytes are cut into writes.
func TestStreamSplitter(t *testing.T) {
	stream := `<?xml version="1.0"?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" version="1.0" from="localhost" id="abc&amp;" xml:lang="en">` +
		`<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>PLAIN</mechanism></mechanisms></stream:features>` +
		"\n " +
		`<message to="a@b" id='x>y'><body>1 &lt; 2 &gt; 0</body><x xmlns="urn:x"/></message>` +
		`<presence/>` +
		`<iq xmlns="jabber:client" type="result" id="1"/>` +
		`<stream:error><conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>` +
		`</stream:stream>`
	want := []string{
		"header id=abc& from=localhost version=1.0 lang=en",
		`<stream:features xmlns:stream="http://etherx.jabber.org/streams"><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>PLAIN</mechanism></mechanisms></stream:features>`,
		`<message xmlns="jabber:client" to="a@b" id='x>y'><body>1 &lt; 2 &gt; 0</body><x xmlns="urn:x"/></message>`,
		`<presence xmlns="jabber:client"/>`,
		`<iq xmlns="jabber:client" type="result" id="1"/>`,
		`<stream:error xmlns:stream="http://etherx.jabber.org/streams"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>`,
		"end",
	}
	split := func(cuts ...int) []string {
		var sp xmpp.StreamSplitter
		var got []string
		emit := func(p xmpp.StreamPart) error {
			switch p.Kind {
			case xmpp.PartHeader:
				h := p.Header
				got = append(got, fmt.Sprintf("header id=%s from=%s version=%s lang=%s", h.ID, h.From, h.Version, h.Lang))
			case xmpp.PartElement:
				got = append(got, string(p.AppendElement(nil)))
				if len(p.AppendElement(nil)) != p.Len() {
					t.Errorf("Len %d for %q", p.Len(), p.AppendElement(nil))
				}
			case xmpp.PartEnd:
				got = append(got, "end")
			}
			return nil
		}
		prev := 0
		for _, c := range append(cuts, len(stream)) {
			if err := sp.Write([]byte(stream[prev:c]), emit); err != nil {
				t.Fatal(err)
			}
			prev = c
		}
		return got
	}
	if got := split(); !reflect.DeepEqual(got, want) {
		t.Fatalf("in one write:\n got %q\nwant %q", got, want)
	}
	for i := 1; i < len(stream); i++ {
		if got := split(i); !reflect.DeepEqual(got, want) {
			t.Fatalf("cut at %d:\n got %q\nwant %q", i, got, want)
		}
	}
	// Byte by byte.
	cuts := make([]int, 0, len(stream))
	for i := 1; i < len(stream); i++ {
		cuts = append(cuts, i)
	}
	if got := split(cuts...); !reflect.DeepEqual(got, want) {
		t.Fatalf("byte by byte:\n got %q\nwant %q", got, want)
	}
}

// TestWebPolicy: who is secure, and whose address counts, behind which
// proxy.
func TestWebPolicy(t *testing.T) {
	p := &xmpp.WebPolicy{
		SecureNetworks: xmpp.LoopbackNetworks,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")},
	}
	for _, tc := range []struct {
		name, remote, proto, forwarded string
		secure                         bool
		addr                           string
	}{
		{"loopback plain HTTP", "127.0.0.1:4000", "", "", true, "127.0.0.1:4000"},
		{"IPv6 loopback", "[::1]:4000", "", "", true, "[::1]:4000"},
		{"another host", "192.0.2.7:4000", "", "", false, "192.0.2.7:4000"},
		{"forged headers from a stranger", "192.0.2.7:4000", "https", "198.51.100.1", false, "192.0.2.7:4000"},
		{"trusted proxy, https", "10.0.0.1:4000", "https", "198.51.100.1", true, "198.51.100.1:0"},
		{"trusted proxy, http", "10.0.0.1:4000", "http", "203.0.113.9, 198.51.100.1", false, "198.51.100.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "http://localhost/ws", nil)
			r.RemoteAddr = tc.remote
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
				r.Header.Set("X-Forwarded-For", tc.forwarded)
			}
			addr, secure := p.Client(r)
			if secure != tc.secure || addr.String() != tc.addr {
				t.Fatalf("got %s secure=%v, want %s secure=%v", addr, secure, tc.addr, tc.secure)
			}
		})
	}
}

// BenchmarkStreamSplitter: a batch of 16 chat messages, as a session's
// writer hands them to the WebSocket transport, split into messages and
// written out (to io.Discard). "write" is what wsConn does; "copy" is
// making each standalone element first, as BOSH does for its responses.
func BenchmarkStreamSplitter(b *testing.B) {
	var batch []byte
	for i := 0; i < 16; i++ {
		batch = append(batch, `<message from="alice@localhost/a" to="bob@localhost/b" type="chat" id="m`+strconv.Itoa(i)+`"><body>hello there, how are you today?</body></message>`...)
	}
	for _, mode := range []string{"write", "copy"} {
		b.Run(mode, func(b *testing.B) {
			var sp xmpp.StreamSplitter
			emit := func(p xmpp.StreamPart) error {
				if mode == "write" {
					return p.WriteElement(io.Discard)
				}
				_, err := io.Discard.Write(p.AppendElement(make([]byte, 0, p.Len())))
				return err
			}
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				sp.Write(batch, emit)
			}
		})
	}
}
