package carbons_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// smClient is a client that enables stream management (XEP-0198) by hand,
// so that a test can cut its connection and resume the session. It never
// acknowledges: a resumption with h=0 gets everything again.
type smClient struct {
	t   *testing.T
	st  *testenv.TLSStream
	JID jid.JID
	in  chan *xmpp.Element
	// answer is the server's <resumed/> or <failed/> to a resumption.
	answer *xmpp.Element
}

// smDial signs user in and binds resource, or, with previd, resumes that
// session having received h stanzas.
func smDial(t *testing.T, s *testenv.Server, user jid.JID, resource, previd string, h uint32) *smClient {
	t.Helper()
	st := s.StartTLS(t, "127.0.0.1")
	io.WriteString(st, testenv.PlainAuth(user.Localpart(), "pw"))
	if el, err := st.Next(); err != nil || el.Local != "success" {
		t.Fatalf("auth: %v %v", el, err)
	}
	io.WriteString(st, testenv.Header)
	d := xml.NewDecoder(st)
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	read := func() *xmpp.Element {
		t.Helper()
		st.SetReadDeadline(time.Now().Add(testenv.Timeout))
		el, err := xmpp.NextElement(d)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		st.SetReadDeadline(time.Time{})
		return el
	}
	if f := read(); f.Child(xmpp.NSSM, "sm") == nil {
		t.Fatalf("no stream management offered: %s", f)
	}
	c := &smClient{t: t, st: st, JID: user, in: make(chan *xmpp.Element, 1024)}
	if previd != "" {
		fmt.Fprintf(st, `<resume xmlns="%s" previd="%s" h="%d"/>`, xmpp.NSSM, previd, h)
		c.answer = read()
	} else {
		res := ""
		if resource != "" {
			res = "<resource>" + resource + "</resource>"
		}
		io.WriteString(st, `<iq type="set" id="bind"><bind xmlns="`+xmpp.NSBind+`">`+res+`</bind></iq>`)
		el := read()
		if el.Get("type") != "result" {
			t.Fatalf("bind: %s", el)
		}
		c.JID = jid.MustParse(el.Child(xmpp.NSBind, "bind").Child(xmpp.NSBind, "jid").Text())
	}
	go func() {
		defer close(c.in)
		for {
			el, err := xmpp.NextElement(d)
			if err != nil {
				return
			}
			c.in <- el
		}
	}()
	return c
}

func (c *smClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.st, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expect skips to the element match accepts.
func (c *smClient) expect(what string, match func(*xmpp.Element) bool) *xmpp.Element {
	c.t.Helper()
	timer := time.NewTimer(testenv.Timeout)
	defer timer.Stop()
	for {
		select {
		case el, ok := <-c.in:
			if !ok {
				c.t.Fatalf("%s: stream ended while waiting for %s", c.JID, what)
			}
			if match(el) {
				return el
			}
		case <-timer.C:
			c.t.Fatalf("%s: timed out waiting for %s", c.JID, what)
		}
	}
}

// enable turns stream management on with resumption and returns its id.
func (c *smClient) enable() string {
	c.t.Helper()
	c.send(`<enable xmlns="` + xmpp.NSSM + `" resume="true"/>`)
	en := c.expect("enabled", func(el *xmpp.Element) bool {
		return el.Space == xmpp.NSSM && (el.Local == "enabled" || el.Local == "failed")
	})
	if en.Local != "enabled" || en.Get("id") == "" {
		c.t.Fatalf("stream management not resumable: %s", en)
	}
	return en.Get("id")
}

// cut drops the TCP connection under TLS, as a phone losing its network.
func (c *smClient) cut() { c.st.NetConn().Close() }

// defaultModules are the modules of a default server on srv's store.
func defaultModules(srv *xmpp.Server) []xmpp.Module {
	return modules.Default(modules.Options{Store: srv.Store})
}

// sessionWatch is a module that reports hibernated sessions, so that a
// test waits for the hibernation rather than for a while.
type sessionWatch struct{ hibernated chan<- *xmpp.Session }

func (w sessionWatch) Register(s *xmpp.Server) {
	s.HookSession(xmpp.SessionHibernated, 0, func(_ context.Context, sess *xmpp.Session) {
		select {
		case w.hibernated <- sess:
		default:
		}
	})
}
