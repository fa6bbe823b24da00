package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocketProtocol is the WebSocket subprotocol of RFC 7395 §3.3.1.
const WebSocketProtocol = "xmpp"

// WebSocketHandler serves client streams over WebSocket (RFC 7395): one
// element per text message, with <open/> and <close/> framing the stream.
// The stream is then the same as over TCP.
func (s *Server) WebSocketHandler(policy *WebPolicy) http.Handler {
	up := &websocket.Upgrader{
		Subprotocols:    []string{WebSocketProtocol},
		ReadBufferSize:  1024,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     policy.OriginAllowed,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.init()
		if !websocket.IsWebSocketUpgrade(r) {
			http.Error(w, "this is the XMPP WebSocket endpoint (RFC 7395); connect with a WebSocket client", http.StatusBadRequest)
			return
		}
		if !policy.OriginAllowed(r) {
			http.Error(w, "origin not allowed: add it to http.allowed_origins", http.StatusForbidden)
			return
		}
		if !offers(websocket.Subprotocols(r), WebSocketProtocol) {
			http.Error(w, `the "xmpp" WebSocket subprotocol is required (RFC 7395 §3.3.1)`, http.StatusBadRequest)
			return
		}
		addr, secure := policy.Client(r)
		// An upgrade takes its connection over, so a connection starts at
		// most one WebSocket; it pays again only after a BOSH session on
		// the same connection, or when a proxy forwards it.
		if refusal, ok := s.AdmitWebStream(r, addr); !ok {
			w.Header().Set("Retry-After", "1")
			http.Error(w, refusal.Text, http.StatusTooManyRequests)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered
		}
		s.ServeConn(newWSConn(s, ws, addr), secure)
	})
}

func offers(list []string, p string) bool {
	for _, v := range list {
		if v == p {
			return true
		}
	}
	return false
}

// wsConn presents a WebSocket carrying an RFC 7395 stream as a connection
// carrying an RFC 6120 one: Read translates the client's messages, Write
// splits the server's stream into messages. Reads and writes each come from
// one goroutine at a time (the negotiation, then the session's reader and
// writer), as gorilla/websocket requires.
type wsConn struct {
	ws     *websocket.Conn
	remote net.Addr
	in     []byte // translated input not yet read
	split  StreamSplitter
	wbuf   []byte
	limit  int64 // the largest message read; negative: none
	// seen is when the client was last heard from (a message or a pong),
	// in unix nanoseconds; the liveness timer pings it when it is silent.
	seen atomic.Int64
	live *time.Timer
	// writeDL is the write deadline (unix nanoseconds, 0: none). gorilla
	// keeps its own without a lock, so only the writer hands it over.
	writeDL   atomic.Int64
	closeOnce sync.Once
}

func newWSConn(s *Server, ws *websocket.Conn, remote net.Addr) *wsConn {
	c := &wsConn{ws: ws, remote: remote, limit: -1}
	// A message larger than a stanza may be is refused with a stream error,
	// as on TCP, once that much of it has been read.
	if max := s.cur().MaxStanzaSize; max > 0 {
		c.limit = int64(max)
	}
	c.seen.Store(time.Now().UnixNano())
	ws.SetPongHandler(func(string) error {
		c.seen.Store(time.Now().UnixNano())
		return nil
	})
	if s.PingInterval > 0 {
		c.keepAlive(s.PingInterval, s.PingTimeout)
	}
	return c
}

// keepAlive pings a client that has been silent for interval, and closes
// the connection when it stays silent for timeout more: WebSocket pings are
// answered by the browser itself, even when a page's scripts are throttled.
func (c *wsConn) keepAlive(interval, timeout time.Duration) {
	var check func()
	check = func() {
		silent := time.Since(time.Unix(0, c.seen.Load()))
		next := interval - silent
		switch {
		case silent >= interval+timeout:
			c.ws.Close()
			return
		case silent >= interval:
			c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(timeout))
			next = timeout
		}
		c.live.Reset(next)
	}
	c.live = time.AfterFunc(interval, check)
}

var (
	wsOpen  = []byte("<open")
	wsClose = []byte("<close")
)

func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.in) == 0 {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return 0, io.EOF
			}
			return 0, err
		}
		c.seen.Store(time.Now().UnixNano())
		if typ != websocket.TextMessage {
			return 0, StreamError{Condition: BadFormat, Text: "XMPP over WebSocket uses text messages only (RFC 7395 §3.3.3)"}
		}
		if c.limit >= 0 {
			r = io.LimitReader(r, c.limit+1)
		}
		msg, err := io.ReadAll(r)
		if err != nil {
			return 0, err
		}
		if c.limit >= 0 && int64(len(msg)) > c.limit {
			return 0, errTooBig
		}
		c.in, err = translateFrame(msg)
		if err != nil {
			return 0, err
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	if len(c.in) == 0 {
		c.in = nil
	}
	return n, nil
}

// translateFrame turns one client message into stream bytes: <open/> is a
// stream header, <close/> the stream's end, anything else passes as it is
// (the guard checks it like any stream input).
func translateFrame(msg []byte) ([]byte, error) {
	t := bytes.TrimLeft(msg, " \t\r\n")
	isOpen := bytes.HasPrefix(t, wsOpen) && len(t) > len(wsOpen) && !isNameByte(t[len(wsOpen)])
	isClose := bytes.HasPrefix(t, wsClose) && len(t) > len(wsClose) && !isNameByte(t[len(wsClose)])
	if !isOpen && !isClose {
		return msg, nil
	}
	d := xml.NewDecoder(bytes.NewReader(t))
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, StreamError{Condition: NotWellFormed}
	}
	if start.Name.Space != NSFraming {
		return nil, StreamError{Condition: InvalidNamespace, Text: "<open/> and <close/> are in " + NSFraming + " (RFC 7395 §3.3.2)"}
	}
	if err := checkStartTag(start); err != nil {
		return nil, err
	}
	if isClose {
		return []byte("</stream:stream>"), nil
	}
	var h StreamHeader
	h.setAttrs(start.Attr)
	h.ID = "" // the client has no say in it
	return AppendStreamOpen(nil, h), nil
}

func isNameByte(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c == ':' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

func (c *wsConn) Write(p []byte) (int, error) {
	err := c.split.Write(p, func(part StreamPart) error {
		c.ws.SetWriteDeadline(c.writeDeadline())
		switch part.Kind {
		case PartHeader:
			return c.ws.WriteMessage(websocket.TextMessage, c.openFrame(part.Header))
		case PartEnd:
			return c.ws.WriteMessage(websocket.TextMessage, []byte(`<close xmlns="`+NSFraming+`"/>`))
		}
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return err
		}
		if err := part.WriteElement(w); err != nil {
			return err
		}
		return w.Close()
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// openFrame is the server's <open/> (RFC 7395 §3.4).
func (c *wsConn) openFrame(h StreamHeader) []byte {
	b := c.wbuf[:0]
	b = append(b, `<open xmlns="`+NSFraming+`"`...)
	b = appendAttrs(b, "from", h.From, "id", h.ID, "version", h.Version, "xml:lang", h.Lang)
	b = append(b, "/>"...)
	c.wbuf = b[:0]
	return b
}

// Close ends the WebSocket with a close message, then the connection.
func (c *wsConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.live != nil {
			c.live.Stop()
		}
		c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		err = c.ws.Close()
	})
	return err
}

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

// Transport names the transport for Session.Transport.
func (c *wsConn) Transport() string { return TransportWebSocket }

func (c *wsConn) SetDeadline(t time.Time) error {
	c.ws.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline may come from any goroutine (Session.Close): it is
// recorded for the writer and put on the connection at once, so that a
// write in progress gives up too.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	c.writeDL.Store(n)
	return c.ws.NetConn().SetWriteDeadline(t)
}

func (c *wsConn) writeDeadline() time.Time {
	if n := c.writeDL.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
