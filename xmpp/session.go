package xmpp

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// A Session is one negotiated client stream bound to a full JID. One
// goroutine reads and parses stanzas and hands them to the router; another
// writes from a bounded queue, flushing when the queue is empty.
type Session struct {
	srv  *Server
	c    *conn
	ms   *mxmpp.Session
	jid  jid.JID
	full string
	bare string
	log  *slog.Logger

	out       chan []byte
	closing   chan struct{}
	closeOnce sync.Once
	final     []byte
	writerEnd chan struct{}

	lastRead atomic.Int64 // unix nanoseconds

	mu        sync.Mutex
	available bool
	priority  int
	pending   map[string]chan *Element
	nextID    uint64
}

func newSession(s *Server, c *conn) *Session {
	j := c.bound
	sess := &Session{
		srv:       s,
		c:         c,
		jid:       j,
		full:      j.String(),
		bare:      j.Bare().String(),
		log:       c.log.With("jid", j.String()),
		out:       make(chan []byte, s.QueueSize),
		closing:   make(chan struct{}),
		writerEnd: make(chan struct{}),
	}
	sess.lastRead.Store(time.Now().UnixNano())
	return sess
}

// JID is the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// Available reports whether the client has sent available presence, and its
// priority (RFC 6121 §4.7.2.3).
func (s *Session) Available() (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.available, s.priority
}

// Idle is how long the client has been silent.
func (s *Session) Idle() time.Duration {
	return time.Since(time.Unix(0, s.lastRead.Load()))
}

// register makes the session routable, replacing an older session bound to
// the same full JID (RFC 6120 §7.7.2.2).
func (s *Session) register() {
	if old := s.srv.router.register(s); old != nil {
		old.Close(&StreamError{Condition: Conflict, Text: "replaced by a new session for the same resource"})
	}
}

// serve runs the negotiated session until its stream ends.
func (s *Session) serve(ms *mxmpp.Session) {
	s.ms = ms
	s.log.Info("session started")
	s.srv.hooks.sessionStarted(s)
	go s.writeLoop()
	err := s.readLoop()
	s.srv.router.unregister(s)
	s.srv.hooks.sessionEnded(s)
	if err != nil {
		if se, ok := streamErrorFor(err); ok {
			s.Close(&se)
		} else {
			s.Close(nil)
		}
	} else {
		s.Close(nil)
	}
	<-s.writerEnd
	s.log.Info("session ended", "err", err)
}

func (s *Session) readLoop() error {
	r := s.ms.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				return nil // the client closed its stream
			}
			return err
		}
		s.lastRead.Store(time.Now().UnixNano())
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue // whitespace keepalives
		}
		el, err := ReadElement(r, start)
		if err != nil {
			return err
		}
		if err := s.handle(el); err != nil {
			return err
		}
	}
}

// handle checks and stamps one stanza from the client and routes it.
func (s *Session) handle(el *Element) error {
	if el.Space != NSClient {
		return StreamError{Condition: UnsupportedStanza}
	}
	switch el.Local {
	case "message", "presence", "iq":
	default:
		return StreamError{Condition: UnsupportedStanza}
	}
	// RFC 6120 §8.1.2.1: the server stamps 'from'; a client that claims to be
	// someone else has its stream closed.
	if f := el.Get("from"); f != "" && f != s.full {
		fj, err := jid.Parse(f)
		if err != nil || !(fj.Equal(s.jid) || fj.Equal(s.jid.Bare())) {
			return StreamError{Condition: InvalidFrom}
		}
	}
	el.Set("from", s.full)
	if el.Local != "presence" {
		s.srv.router.Route(s.srv.ctx, el, s)
		return nil
	}
	was, _ := s.Available()
	if el.Get("to") == "" {
		s.setPresence(el)
	}
	if h := s.srv.hooks.presence(); h != nil {
		h.OutboundPresence(s.srv.ctx, s, el, was)
	} else if el.Get("to") != "" {
		s.srv.router.Route(s.srv.ctx, el, s)
	}
	if now, _ := s.Available(); now && !was {
		s.srv.hooks.available(s.srv.ctx, s)
	}
	return nil
}

// setPresence records the client's broadcast presence (RFC 6121 §4.2, §4.5).
func (s *Session) setPresence(el *Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch el.Get("type") {
	case "":
		s.available = true
		s.priority = 0
		if p := el.Child(NSClient, "priority"); p != nil {
			if n, err := strconv.Atoi(p.Text()); err == nil && n >= -128 && n <= 127 {
				s.priority = n
			}
		}
	case "unavailable":
		s.available = false
	}
}

// Send queues a stanza for the client.
func (s *Session) Send(el *Element) bool {
	return s.SendBytes(el.Bytes(NSClient))
}

// SendBytes queues serialised stanzas. When the queue is full the client is
// not keeping up; it alone is disconnected, so that nobody else waits for it.
func (s *Session) SendBytes(b []byte) bool {
	select {
	case s.out <- b:
		return true
	case <-s.closing:
		return false
	default:
		s.Close(&StreamError{Condition: ResourceConstraint, Text: "too many stanzas waiting for delivery"})
		return false
	}
}

// Close ends the session with an optional stream error; it may be called
// from any goroutine, any number of times.
func (s *Session) Close(se *StreamError) {
	s.closeOnce.Do(func() {
		if se != nil {
			s.log.Info("stream error", "condition", se.Condition, "text", se.Text)
			s.final = se.Append(s.final)
		}
		s.final = append(s.final, "</stream:stream>"...)
		// A writer stuck on a client that does not read gives up soon.
		s.c.raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
		close(s.closing)
	})
}

const writeTimeout = 30 * time.Second

func (s *Session) writeLoop() {
	defer close(s.writerEnd)
	conn := s.c.raw
	// Write below the guard: its bookkeeping only matters for negotiation.
	w := bufio.NewWriterSize(s.c.guard.Conn, 4096)
	write := func(b []byte) bool {
		_, err := w.Write(b)
		return err == nil
	}
	defer func() {
		// Close our stream after what was queued, then the connection.
		for {
			select {
			case b := <-s.out:
				if !write(b) {
					conn.Close()
					return
				}
				continue
			default:
			}
			break
		}
		write(s.final)
		w.Flush()
		conn.Close()
	}()
	for {
		select {
		case b := <-s.out:
			conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if !write(b) {
				return
			}
			for n := len(s.out); n > 0; n-- {
				if !write(<-s.out) {
					return
				}
			}
			if w.Flush() != nil {
				return
			}
		case <-s.closing:
			return
		}
	}
}

// Request sends an IQ get or set from the server to the client and waits for
// the answer.
func (s *Session) Request(ctx context.Context, iq *Element) (*Element, error) {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = make(map[string]chan *Element)
	}
	s.nextID++
	id := "s" + strconv.FormatUint(s.nextID, 36)
	ch := make(chan *Element, 1)
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	iq = iq.ShallowCopy()
	iq.Set("id", id)
	iq.Set("to", s.full)
	if iq.Get("from") == "" {
		iq.Set("from", s.srv.Domain)
	}
	if !s.Send(iq) {
		return nil, errSessionClosed
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closing:
		return nil, errSessionClosed
	}
}

var errSessionClosed = errors.New("xmpp: session closed")

// response delivers an IQ result or error addressed to the server to the
// Request waiting for it; false if nobody waits.
func (s *Session) response(iq *Element) bool {
	s.mu.Lock()
	ch := s.pending[iq.Get("id")]
	s.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case ch <- iq:
	default:
	}
	return true
}
