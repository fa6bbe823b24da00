package testenv

import (
	"encoding/xml"
	"fmt"
	"io"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// Authenticate signs in with PLAIN on an encrypted stream and restarts it:
// it returns the features after authentication and the decoder that reads
// on from them.
func (ts *TLSStream) Authenticate(t testing.TB, user, password string) (*xmpp.Element, *xml.Decoder) {
	t.Helper()
	io.WriteString(ts, PlainAuth(user, password))
	if el, err := ts.Next(); err != nil || el.Local != "success" {
		t.Fatalf("auth: %v %v", el, err)
	}
	io.WriteString(ts, Header)
	d := xml.NewDecoder(ts)
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("stream after auth: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	f, err := next(d)
	if err != nil || f.Local != "features" {
		t.Fatalf("features after auth: %v %v", f, err)
	}
	return f, d
}

// SMClient is a client that speaks stream management (XEP-0198) by hand,
// so that every count and every cut is the test's: it acknowledges only
// when told, and H counts the stanzas it received since <enabled/> or
// <resumed/>.
type SMClient struct {
	t  testing.TB
	st *TLSStream
	// JID is the bound full JID; after a resumption, the account's bare JID
	// (the session's own is the one it had).
	JID jid.JID
	// Answer is the server's <resumed/> or <failed/> to a resumption, or
	// the error it answered a bind with (DialSMOn).
	Answer *xmpp.Element
	H      uint32
	in     chan *xmpp.Element
	// Done receives the error that ended the stream.
	Done chan error
}

// DialSM signs user in over STARTTLS and binds resource (server-generated
// if ""), or, with previd, resumes that session having received h
// stanzas; with a failed resumption, Answer says why and nothing else
// works. Stream management must be on offer.
func (s *Server) DialSM(t testing.TB, user jid.JID, password, resource, previd string, h uint32) *SMClient {
	t.Helper()
	return DialSMOn(t, s.StartTLS(t, "127.0.0.1"), user, password, resource, previd, h)
}

// DialSMOn is DialSM on an encrypted stream st (StartTLSAt: to a server in
// another process). A refused bind leaves the error in Answer, as a failed
// resumption.
func DialSMOn(t testing.TB, st *TLSStream, user jid.JID, password, resource, previd string, h uint32) *SMClient {
	t.Helper()
	features, d := st.Authenticate(t, user.Localpart(), password)
	if features.Child(xmpp.NSSM, "sm") == nil {
		t.Fatalf("no stream management offered: %s", features)
	}
	c := &SMClient{t: t, st: st, JID: user, in: make(chan *xmpp.Element, 1024), Done: make(chan error, 1)}
	read := func() *xmpp.Element {
		t.Helper()
		el, err := next(d)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return el
	}
	if previd != "" {
		fmt.Fprintf(st, `<resume xmlns="%s" previd="%s" h="%d"/>`, xmpp.NSSM, previd, h)
		c.Answer = read()
		if c.Answer.Local == "failed" {
			return c
		}
	} else {
		res := ""
		if resource != "" {
			res = "<resource>" + resource + "</resource>"
		}
		io.WriteString(st, `<iq type="set" id="bind"><bind xmlns="`+xmpp.NSBind+`">`+res+`</bind></iq>`)
		el := read()
		if el.Get("type") == "error" {
			c.Answer = el
			return c
		}
		if el.Get("type") != "result" {
			t.Fatalf("bind: %s", el)
		}
		c.JID = jid.MustParse(el.Child(xmpp.NSBind, "bind").Child(xmpp.NSBind, "jid").Text())
	}
	// The reader has no deadline: a test that waits gives up itself.
	st.SetDeadline(time.Time{})
	go func() {
		defer close(c.in)
		for {
			el, err := xmpp.NextElement(d)
			if err != nil {
				c.Done <- err
				return
			}
			c.in <- el
		}
	}()
	return c
}

// Send writes XML to the server as it is.
func (c *SMClient) Send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.st, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Next returns the next element, counting stanzas in H.
func (c *SMClient) Next() *xmpp.Element {
	c.t.Helper()
	select {
	case el, ok := <-c.in:
		if !ok {
			c.t.Fatalf("%s: stream ended: %v", c.JID, <-c.Done)
		}
		switch el.Local {
		case "message", "presence", "iq":
			if el.Space == xmpp.NSClient {
				c.H++
			}
		}
		return el
	case <-time.After(Timeout):
		c.t.Fatalf("%s: nothing arrived", c.JID)
	}
	return nil
}

// Expect skips to the next element match accepts; a stream error fails.
func (c *SMClient) Expect(what string, match func(*xmpp.Element) bool) *xmpp.Element {
	c.t.Helper()
	for {
		el := c.Next()
		if match(el) {
			return el
		}
		if el.Local == "error" && el.Space == xmpp.NSStream {
			c.t.Fatalf("%s: stream error while waiting for %s: %s", c.JID, what, el)
		}
	}
}

// Enable turns stream management on with resumption and returns its id.
func (c *SMClient) Enable() string {
	c.t.Helper()
	c.Send(`<enable xmlns="` + xmpp.NSSM + `" resume="true"/>`)
	en := c.Expect("enabled", func(el *xmpp.Element) bool {
		return el.Space == xmpp.NSSM && (el.Local == "enabled" || el.Local == "failed")
	})
	if en.Local != "enabled" || en.Get("resume") != "true" || en.Get("id") == "" {
		c.t.Fatalf("stream management not resumable: %s", en)
	}
	c.H = 0
	return en.Get("id")
}

// Cut drops the TCP connection without closing the stream or TLS, as a
// phone losing its network does.
func (c *SMClient) Cut() { c.st.NetConn().Close() }

// Close closes the connection.
func (c *SMClient) Close() { c.st.Close() }
