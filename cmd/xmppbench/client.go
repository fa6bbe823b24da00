package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// XML namespaces the client speaks during login.
const (
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSM      = "urn:xmpp:sm:3"
	nsRoster  = "jabber:iq:roster"
	nsPing    = "urn:xmpp:ping"
	nsStreams = "http://etherx.jabber.org/streams"
)

// client is one simulated user: a TLS connection and the framer its reads go
// through. Only login parses XML; afterwards the scenario scans raw elements.
type client struct {
	user string // local part
	full string // bound full JID
	raw  net.Conn
	conn net.Conn // raw, then TLS
	f    *framer
	web  bool // over a WebSocket: its TLS is the transport's, no STARTTLS
	// curve is the key exchange STARTTLS negotiated (0 without STARTTLS).
	curve tls.CurveID
	// watch, when set, sees every element the reader gets (the muc
	// scenario's joins).
	watch atomic.Pointer[func(el []byte)]
}

// dial connects the i-th client to its server address (config.addr), from
// its local source address (config.source).
func dial(ctx context.Context, cfg *config, i int) (*client, error) {
	src := cfg.source(i)
	if cfg.url != "" {
		raw, err := dialWebSocket(ctx, cfg, src)
		if err != nil {
			return nil, err
		}
		return &client{raw: raw, conn: raw, f: newFramer(2048), web: true}, nil
	}
	d := net.Dialer{Timeout: cfg.timeout}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	raw, err := d.DialContext(ctx, "tcp", cfg.addr(i))
	if err != nil {
		return nil, err
	}
	return &client{raw: raw, conn: raw, f: newFramer(2048)}, nil
}

func (c *client) Close() error { return c.raw.Close() }

// read fills the framer once.
func (c *client) read() error {
	n, err := c.conn.Read(c.f.space())
	c.f.filled(n)
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// element reads until one top-level element is complete and parses it.
func (c *client) element() (*node, error) {
	for {
		if el := c.f.next(); el != nil {
			n := new(node)
			if err := xml.Unmarshal(el, n); err != nil {
				return nil, fmt.Errorf("parsing %.200q: %w", el, err)
			}
			return n, nil
		}
		if c.f.closed {
			return nil, errors.New("the server closed the stream")
		}
		if err := c.read(); err != nil {
			return nil, err
		}
	}
}

// expect reads the next element and fails unless it has the given local name.
func (c *client) expect(local string) (*node, error) {
	n, err := c.element()
	if err != nil {
		return nil, err
	}
	if n.XMLName.Local != local {
		return nil, fmt.Errorf("expected <%s>, got %s", local, n)
	}
	return n, nil
}

// open sends a stream header and reads the features.
func (c *client) open(domain string) (*node, error) {
	c.f.reset()
	hdr := "<?xml version='1.0'?><stream:stream to='" + domain +
		"' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='" + nsStreams + "'>"
	if _, err := io.WriteString(c.conn, hdr); err != nil {
		return nil, err
	}
	return c.expect("features")
}

// login runs the whole sign-in a client does before it chats: STARTTLS,
// SASL, bind, roster get and initial presence, then a ping whose answer says
// that the server has handled all of it.
func (c *client) login(cfg *config, user string) error {
	c.raw.SetDeadline(time.Now().Add(cfg.timeout))
	defer c.raw.SetDeadline(time.Time{})
	if err := c.signIn(cfg, user); err != nil {
		return err
	}
	_, err := io.WriteString(c.conn, "<iq type='get' id='r'><query xmlns='"+nsRoster+"'/></iq><presence/>"+
		"<iq type='get' id='p' to='"+cfg.domain+"'><ping xmlns='"+nsPing+"'/></iq>")
	if err != nil {
		return err
	}
	handled := 0 // stanzas received since <enabled/> (XEP-0198 §4)
	for roster := false; ; {
		n, err := c.element()
		if err != nil {
			return err
		}
		switch n.XMLName.Local {
		case "r":
			if _, err := fmt.Fprintf(c.conn, "<a xmlns='%s' h='%d'/>", nsSM, handled); err != nil {
				return err
			}
			continue
		case "message", "presence", "iq":
			handled++
		}
		if n.XMLName.Local != "iq" {
			continue // our own presence, or anything else the server sends
		}
		if n.attr("type") != "result" {
			return fmt.Errorf("login IQ failed: %s", n)
		}
		switch n.attr("id") {
		case "r":
			roster = true
		case "p":
			if !roster {
				return errors.New("the ping was answered before the roster")
			}
			if cfg.sm {
				// Everything so far is acknowledged, as a client does before
				// it goes quiet, so that the server keeps nothing for it.
				_, err := fmt.Fprintf(c.conn, "<a xmlns='%s' h='%d'/>", nsSM, handled)
				return err
			}
			return nil
		}
	}
}

// signIn is the start of a login: STARTTLS, SASL, bind, and stream
// management with -sm. The caller sets the connection's deadline.
func (c *client) signIn(cfg *config, user string) error {
	c.user = user
	feat, err := c.open(cfg.domain)
	if err != nil {
		return err
	}
	if !c.web {
		if feat, err = c.startTLS(cfg, feat); err != nil {
			return err
		}
	}
	mechs := feat.child("mechanisms")
	if mechs == nil || !mechs.hasText("mechanism", cfg.mech) {
		return fmt.Errorf("the server does not offer %s: %s", cfg.mech, feat)
	}
	if err := c.authenticate(cfg, user); err != nil {
		return err
	}
	if _, err = c.open(cfg.domain); err != nil {
		return err
	}
	_, err = io.WriteString(c.conn, "<iq type='set' id='b'><bind xmlns='"+nsBind+"'><resource>"+
		cfg.resource+"</resource></bind></iq>")
	if err != nil {
		return err
	}
	res, err := c.expect("iq")
	if err != nil {
		return err
	}
	j := res.child("bind").child("jid")
	if res.attr("type") != "result" || j == nil {
		return fmt.Errorf("bind failed: %s", res)
	}
	c.full = j.Text
	if cfg.sm {
		if _, err := io.WriteString(c.conn, "<enable xmlns='"+nsSM+"' resume='true'/>"); err != nil {
			return err
		}
		if n, err := c.expect("enabled"); err != nil {
			return err
		} else if n.attr("id") == "" {
			return fmt.Errorf("stream management not resumable: %s", n)
		}
	}
	return nil
}

// startTLS upgrades the stream and returns the new features.
func (c *client) startTLS(cfg *config, feat *node) (*node, error) {
	if feat.child("starttls") == nil {
		return nil, errors.New("the server does not offer STARTTLS")
	}
	if _, err := io.WriteString(c.conn, "<starttls xmlns='"+nsTLS+"'/>"); err != nil {
		return nil, err
	}
	if _, err := c.expect("proceed"); err != nil {
		return nil, err
	}
	tc := tls.Client(c.raw, cfg.tls)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	c.conn = tc
	c.curve = tc.ConnectionState().CurveID
	return c.open(cfg.domain)
}

func (c *client) authenticate(cfg *config, user string) error {
	if cfg.mech == "PLAIN" {
		msg := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + cfg.password))
		if _, err := io.WriteString(c.conn, "<auth xmlns='"+nsSASL+"' mechanism='PLAIN'>"+msg+"</auth>"); err != nil {
			return err
		}
		n, err := c.element()
		if err != nil {
			return err
		}
		if n.XMLName.Local != "success" {
			return fmt.Errorf("authentication failed: %s", n.condition())
		}
		return nil
	}
	s, err := newSCRAM(cfg.mech, user, cfg.password, cfg.saltCache)
	if err != nil {
		return err
	}
	first := base64.StdEncoding.EncodeToString(s.first())
	if _, err := io.WriteString(c.conn, "<auth xmlns='"+nsSASL+"' mechanism='"+cfg.mech+"'>"+first+"</auth>"); err != nil {
		return err
	}
	for {
		n, err := c.element()
		if err != nil {
			return err
		}
		var data []byte
		if t := strings.TrimSpace(n.Text); t != "" && t != "=" {
			if data, err = base64.StdEncoding.DecodeString(t); err != nil {
				return fmt.Errorf("SASL data: %w", err)
			}
		}
		switch n.XMLName.Local {
		case "challenge":
			resp, err := s.step(data)
			if err != nil {
				return err
			}
			if _, err := io.WriteString(c.conn, "<response xmlns='"+nsSASL+"'>"+
				base64.StdEncoding.EncodeToString(resp)+"</response>"); err != nil {
				return err
			}
		case "success":
			if len(data) > 0 {
				if _, err := s.step(data); err != nil {
					return err
				}
			}
			if !s.verified {
				return errors.New("the server did not prove that it knows the password")
			}
			return nil
		default:
			return fmt.Errorf("authentication failed: %s", n.condition())
		}
	}
}

// node is a parsed element, for login only.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []*node    `xml:",any"`
}

func (n *node) child(local string) *node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.XMLName.Local == local {
			return c
		}
	}
	return nil
}

func (n *node) hasText(local, text string) bool {
	for _, c := range n.Children {
		if c.XMLName.Local == local && strings.TrimSpace(c.Text) == text {
			return true
		}
	}
	return false
}

func (n *node) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// condition names a SASL failure or an error by its first child.
func (n *node) condition() string {
	if len(n.Children) == 0 {
		return n.XMLName.Local
	}
	return n.XMLName.Local + " " + n.Children[0].XMLName.Local
}

func (n *node) String() string {
	var b bytes.Buffer
	c := *n
	c.Attrs = slices.DeleteFunc(slices.Clone(c.Attrs), func(a xml.Attr) bool {
		return a.Name.Local == "xmlns" || a.Name.Space == "xmlns"
	})
	xml.NewEncoder(&b).Encode(&c)
	if b.Len() > 300 {
		return b.String()[:300] + "..."
	}
	return b.String()
}
