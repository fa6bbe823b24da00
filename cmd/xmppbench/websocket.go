package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xmppd/xmppd/xmpp"
)

// wsConn carries the client's stream over a WebSocket (RFC 7395) and looks
// like a connection carrying a classic stream, so that login and the
// scenarios are the same for both transports: what the client writes is
// split into one message per element (the header becomes <open/>, the
// stream's end <close/>); what the server sends reads as stream bytes.
type wsConn struct {
	ws    *websocket.Conn
	split xmpp.StreamSplitter
	in    []byte
	to    string
}

// dialWebSocket opens the WebSocket with the xmpp subprotocol. TLS (wss://)
// is the transport's, so login skips STARTTLS.
func dialWebSocket(ctx context.Context, cfg *config, src net.IP) (net.Conn, error) {
	d := websocket.Dialer{
		Subprotocols:     []string{"xmpp"},
		HandshakeTimeout: cfg.timeout,
		TLSClientConfig:  cfg.tls,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{Timeout: cfg.timeout}
			if src != nil {
				nd.LocalAddr = &net.TCPAddr{IP: src}
			}
			return nd.DialContext(ctx, network, addr)
		},
		ReadBufferSize:  2048,
		WriteBufferSize: 2048,
	}
	ws, resp, err := d.DialContext(ctx, cfg.url, http.Header{})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return &wsConn{ws: ws, to: cfg.domain}, nil
}

var (
	framingOpen  = []byte("<open ")
	framingClose = []byte("<close ")
)

func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.in) == 0 {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return 0, err
		}
		switch {
		case bytes.HasPrefix(msg, framingOpen):
			c.in = append([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='"+nsStreams+"' "), msg[len(framingOpen):len(msg)-2]...)
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

func (c *wsConn) Write(p []byte) (int, error) {
	err := c.split.Write(p, func(part xmpp.StreamPart) error {
		var msg []byte
		switch part.Kind {
		case xmpp.PartHeader:
			msg = []byte("<open xmlns='" + xmpp.NSFraming + "' to='" + c.to + "' version='1.0'/>")
		case xmpp.PartElement:
			msg = part.Element
		case xmpp.PartEnd:
			msg = []byte("<close xmlns='" + xmpp.NSFraming + "'/>")
		}
		return c.ws.WriteMessage(websocket.TextMessage, msg)
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error         { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error {
	c.ws.SetWriteDeadline(t)
	return c.ws.SetReadDeadline(t)
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
