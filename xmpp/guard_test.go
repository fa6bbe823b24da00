package xmpp

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

const testHeader = `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`

// framed writes in to a guard in chunks of the given size and collects what
// next returns until it fails.
func framed(t *testing.T, in string, chunk int) (els []string, g *guard, err error) {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		for s := in; len(s) > 0; {
			n := min(chunk, len(s))
			if _, err := io.WriteString(client, s[:n]); err != nil {
				return
			}
			s = s[n:]
		}
		client.Close()
	}()
	g = newGuard(server, 4096, nil)
	for {
		el, err := g.next()
		if err != nil {
			return els, g, err
		}
		els = append(els, string(el))
	}
}

// TestGuardFrames cuts a stream into stanzas whatever the read sizes, drops
// keepalives between them, and ends at the stream's end tag.
func TestGuardFrames(t *testing.T) {
	stanzas := []string{
		`<message to="a@localhost" note='x>y/'><body>1 &gt; 0</body></message>`,
		`<presence/>`,
		`<message to="a@localhost"><body>` + strings.Repeat("z", 3000) + `</body></message>`,
		`<iq type="get" id="1"><query xmlns="jabber:iq:roster"/></iq>`,
		`<message><body><![CDATA[</message>]]></body></message>`,
	}
	in := testHeader + stanzas[0] + "\n \n" + stanzas[1] + stanzas[2] + " " + stanzas[3] + stanzas[4] + "\n</stream:stream>"
	for _, chunk := range []int{1, 7, 100, 1024, len(in)} {
		els, _, err := framed(t, in, chunk)
		if !errors.Is(err, io.EOF) {
			t.Errorf("chunks of %d: ended with %v, want io.EOF", chunk, err)
		}
		if strings.Join(els, "|") != strings.Join(stanzas, "|") {
			t.Errorf("chunks of %d: got\n%q\nwant\n%q", chunk, els, stanzas)
		}
	}
}

// TestGuardKeepalives: whitespace between stanzas is not kept, however
// much of it comes.
func TestGuardKeepalives(t *testing.T) {
	in := testHeader + strings.Repeat(" ", 20000) + `<presence/>` + strings.Repeat("\n", 20000) + `<presence/>`
	els, g, err := framed(t, in, 1)
	if len(els) != 2 || els[1] != `<presence/>` {
		t.Fatalf("got %q (%v)", els, err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) || g.streamClosed() {
		t.Errorf("a connection that ends without </stream:stream> gave %v, streamClosed %v", err, g.streamClosed())
	}
	if cap(g.acc) > 256 { // the stream header, read a byte at a time, is all it holds
		t.Errorf("the guard kept %d bytes for keepalives", cap(g.acc))
	}
}

// TestGuardErrors: a malformed or oversized stanza is reported as soon as
// its bytes arrive, not when an end that never comes would have.
func TestGuardErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"mismatched end tag", `<message><body>oops</message>`, errMismatch},
		{"junk in end tag", `<message><body>oops</body x></message>`, errMismatch},
		{"too big", `<message><body>` + strings.Repeat("y", 5000), errTooBig},
		{"too deep", strings.Repeat("<a>", maxDepth+5), errDepth},
		{"comment", `<message><!-- x --></message>`, errRestricted},
	} {
		_, _, err := framed(t, testHeader+`<presence/>`+tc.in, 10)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// End tags may have space before '>'.
	els, _, err := framed(t, testHeader+`<message ><body >x</body ></message
>`, 3)
	if len(els) != 1 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("end tags with space: %q, %v", els, err)
	}
}
