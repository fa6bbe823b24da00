// Package wsclient is the client's side of XMPP over WebSocket (RFC 7395)
// presented as a connection that carries a classic stream, for the load tool
// and the tests: what is written goes out as one message per element (the
// stream header as <open/>, the stream's end as <close/>), and the server's
// messages read as stream bytes, <open/> and <close/> turned back into stream
// tags.
package wsclient

import (
	"bytes"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xmppd/xmppd/xmpp"
)

// Conn is a WebSocket carrying an XMPP stream. Reads come from one
// goroutine at a time, and so do writes.
type Conn struct {
	WS *websocket.Conn
	// To is the domain the client's <open/> names.
	To string

	split xmpp.StreamSplitter
	in    []byte
}

// New wraps an open WebSocket.
func New(ws *websocket.Conn, to string) *Conn { return &Conn{WS: ws, To: to} }

var (
	framingOpen  = []byte("<open ")
	framingClose = []byte("<close ")
)

func (c *Conn) Read(p []byte) (int, error) {
	for len(c.in) == 0 {
		typ, msg, err := c.WS.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return 0, io.EOF
			}
			return 0, err
		}
		if typ != websocket.TextMessage {
			continue
		}
		switch {
		case bytes.HasPrefix(msg, framingOpen) && bytes.HasSuffix(msg, []byte("/>")):
			// The attributes stay; the framing namespace gives way to the
			// stream's.
			attrs := bytes.Replace(msg[len(framingOpen):len(msg)-2], []byte(`xmlns="`+xmpp.NSFraming+`"`), nil, 1)
			attrs = bytes.Replace(attrs, []byte(`xmlns='`+xmpp.NSFraming+`'`), nil, 1)
			c.in = append([]byte(`<stream:stream xmlns="jabber:client" xmlns:stream="`+xmpp.NSStream+`" `), attrs...)
			c.in = append(c.in, '>')
		case bytes.HasPrefix(msg, framingClose):
			c.in = []byte("</stream:stream>")
		default:
			c.in = msg
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *Conn) Write(p []byte) (int, error) {
	err := c.split.Write(p, func(part xmpp.StreamPart) error {
		var msg []byte
		switch part.Kind {
		case xmpp.PartHeader:
			msg = []byte(`<open xmlns="` + xmpp.NSFraming + `" to="` + c.To + `" version="1.0"/>`)
		case xmpp.PartElement:
			msg = part.AppendElement(nil)
		case xmpp.PartEnd:
			msg = []byte(`<close xmlns="` + xmpp.NSFraming + `"/>`)
		}
		return c.WS.WriteMessage(websocket.TextMessage, msg)
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *Conn) Close() error         { return c.WS.Close() }
func (c *Conn) LocalAddr() net.Addr  { return c.WS.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.WS.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error {
	c.WS.SetWriteDeadline(t)
	return c.WS.SetReadDeadline(t)
}
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.WS.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.WS.SetWriteDeadline(t) }
