package xmpp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// A Session is one negotiated client stream bound to a full JID. One
// goroutine reads and parses stanzas and hands them to the router. Writes are
// queued; while the queue is not empty a goroutine writes it out, many
// stanzas per system call, and ends when it is drained, so that an idle
// session has no writer and no write buffer.
type Session struct {
	srv  *Server
	c    *conn
	jid  jid.JID
	full string
	bare string

	closing   chan struct{}
	closeOnce sync.Once
	writerEnd chan struct{}

	wmu   sync.Mutex
	queue [][]byte // waiting to be written
	spare [][]byte // the previous queue's array, for reuse
	// queued is the bytes of the queue and of the batch being written.
	queued  int
	writing bool // a writer goroutine runs
	closed  bool // Close was called; final is the last write
	final   []byte

	mu        sync.Mutex
	available bool
	priority  int
	// wasAvailable is available before the last presence change.
	wasAvailable bool
	pending      map[string]chan *Element
	nextID       uint64
}

func newSession(s *Server, c *conn) *Session {
	j := c.bound
	sess := &Session{
		srv:       s,
		c:         c,
		jid:       j,
		full:      j.String(),
		bare:      j.Bare().String(),
		closing:   make(chan struct{}),
		writerEnd: make(chan struct{}),
	}
	return sess
}

// logger is the server's, with the session's addresses. It is made when
// something is logged rather than kept: an idle session should not hold it.
func (s *Session) logger() *slog.Logger {
	return s.srv.log.With("remote", s.c.remote, "jid", s.full)
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

// WasAvailable reports whether the session was available before its last
// broadcast presence: with Available, PresenceChanged hooks tell initial
// presence (false, then true) from an update.
func (s *Session) WasAvailable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wasAvailable
}

// Idle is how long the client has been silent.
func (s *Session) Idle() time.Duration {
	return time.Since(time.Unix(0, s.c.guard.lastRead.Load()))
}

// register makes the session routable, replacing an older session bound to
// the same full JID (RFC 6120 §7.7.2.2); false when the account has as many
// sessions as it may have.
func (s *Session) register() bool {
	old, ok := s.srv.router.register(s, s.srv.MaxSessionsPerAccount)
	if old != nil {
		old.Close(&StreamError{Condition: Conflict, Text: "replaced by a new session for the same resource"})
	}
	return ok
}

// serve runs the negotiated session until its stream ends. The
// negotiation's mellium session is not kept: the guard frames stanzas, with
// whatever the client sent after binding, and parseStanza parses them.
//
// It is the goroutine the session runs on, and it owns the connection: end
// releases it.
func (s *Session) serve() {
	s.start()
	err := s.readLoop()
	s.end(err)
}

func (s *Session) start() {
	s.c.auth = nil
	s.logger().Info("session started")
	s.srv.hooks.runSession(s.srv.ctx, SessionBound, s)
}

func (s *Session) end(err error) {
	s.srv.router.unregister(s)
	s.srv.hooks.runSession(s.srv.ctx, SessionEnded, s)
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
	s.logger().Info("session ended", "err", err)
	s.c.raw.Close()
	s.srv.wg.Done()
}

func (s *Session) readLoop() error {
	g := s.c.guard
	for {
		b, err := g.next()
		if err != nil {
			if err == io.EOF {
				return nil // the client closed its stream
			}
			return err
		}
		el, err := parseStanza(b, NSClient)
		if err != nil {
			return err
		}
		// The stream prefix is declared on the stream header, which the parser
		// does not see.
		if (el.Space == NSStream || el.Space == "stream") && el.Local == "error" {
			return nil // the client ends the stream with an error of its own
		}
		if err := s.handle(el); err != nil {
			return err
		}
	}
}

// handle checks and stamps one stanza from the client and routes it; other
// top-level elements go to the module that handles them.
func (s *Session) handle(el *Element) error {
	if el.Space != NSClient {
		if h := s.srv.elementHandler(el.Space, el.Local); h != nil {
			return h(s.srv.ctx, s, el)
		}
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
	ctx, r := s.srv.ctx, s.srv.router
	switch el.Local {
	case "iq":
		r.Route(ctx, el, s)
	case "message":
		if s.srv.hooks.has(MessageOut) {
			ev := &StanzaEvent{Stanza: el, Session: s}
			if s.srv.hooks.runStanza(ctx, MessageOut, ev) {
				if ev.Bounce != nil {
					r.bounce(el, s, *ev.Bounce)
				}
				return nil
			}
		}
		r.Route(ctx, el, s)
	case "presence":
		was, _ := s.Available()
		broadcast := el.Get("to") == ""
		if broadcast {
			s.setPresence(el, was)
		}
		ev := &StanzaEvent{Stanza: el, Session: s, WasAvailable: was}
		if s.srv.hooks.runStanza(ctx, PresenceOut, ev) {
			if ev.Bounce != nil {
				r.bounce(el, s, *ev.Bounce)
			}
		} else if !broadcast {
			r.Route(ctx, el, s)
		}
		if broadcast {
			s.srv.hooks.runSession(ctx, PresenceChanged, s)
		}
	}
	return nil
}

// setPresence records the client's broadcast presence (RFC 6121 §4.2, §4.5).
func (s *Session) setPresence(el *Element, was bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wasAvailable = was
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

// send queues a stanza for the client, without the Deliver hooks: for the
// core's own stream-level answers.
func (s *Session) send(el *Element) bool {
	return s.sendBytes(el.Bytes(NSClient))
}

// sendBytes queues serialised stanzas. When the queue is full the client is
// not keeping up; it alone is disconnected, so that nobody else waits for it.
func (s *Session) sendBytes(b []byte) bool {
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return false
	}
	if len(s.queue) >= s.srv.QueueSize {
		s.wmu.Unlock()
		s.Close(&StreamError{Condition: ResourceConstraint, Text: "too many stanzas waiting for delivery"})
		return false
	}
	// Bytes bound the queue too: a few large stanzas to a client that does
	// not read would otherwise hold hundreds of megabytes. One stanza is
	// always taken when nothing waits, whatever its size.
	if s.queued > 0 && s.queued+len(b) > s.srv.QueueBytes {
		s.wmu.Unlock()
		s.Close(&StreamError{Condition: ResourceConstraint, Text: "too much data waiting for delivery"})
		return false
	}
	s.queued += len(b)
	s.queue = append(s.queue, b)
	start := !s.writing
	s.writing = true
	s.wmu.Unlock()
	if start {
		go s.writeQueue()
	}
	return true
}

// Close ends the session with an optional stream error; it may be called
// from any goroutine, any number of times. What was queued before is still
// written, then the stream's end, then the connection is closed.
func (s *Session) Close(se *StreamError) {
	s.closeOnce.Do(func() {
		var final []byte
		if se != nil {
			s.logger().Info("stream error", "condition", se.Condition, "text", se.Text)
			final = se.Append(final)
		}
		final = append(final, "</stream:stream>"...)
		s.wmu.Lock()
		s.closed, s.final = true, final
		// A writer stuck on a client that does not read gives up soon. Set
		// under wmu, so that a writer cannot put its longer deadline back.
		s.c.raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
		start := !s.writing
		s.writing = true
		s.wmu.Unlock()
		close(s.closing)
		if start {
			go s.writeQueue()
		}
	})
}

const writeTimeout = 30 * time.Second

// writeBatch is the most one write system call carries.
const writeBatch = 16 << 10

var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, writeBatch); return &b }}

// writeQueue writes until the queue is empty; after Close, it writes the
// stream's end and closes the connection. It writes below the guard, whose
// bookkeeping only matters while negotiating.
func (s *Session) writeQueue() {
	conn := s.c.guard.Conn
	bp := writeBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	failed := false
	write := func(b []byte) {
		if failed {
			return
		}
		if _, err := conn.Write(b); err != nil {
			failed = true
			s.c.raw.Close() // the reader ends too
		}
	}
	defer func() {
		*bp = buf[:0]
		writeBuffers.Put(bp)
	}()
	for {
		s.wmu.Lock()
		batch, closed := s.queue, s.closed
		if len(batch) == 0 {
			if closed {
				s.wmu.Unlock()
				write(s.final)
				s.c.raw.Close()
				close(s.writerEnd)
				return
			}
			s.writing = false
			s.wmu.Unlock()
			return
		}
		s.queue, s.spare = s.spare[:0], nil
		if !closed {
			s.c.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		s.wmu.Unlock()
		size := 0
		for _, b := range batch {
			size += len(b)
			if len(buf)+len(b) > writeBatch && len(buf) > 0 {
				write(buf)
				buf = buf[:0]
			}
			if len(b) >= writeBatch {
				write(b)
				continue
			}
			buf = append(buf, b...)
		}
		if len(buf) > 0 {
			write(buf)
			buf = buf[:0]
		}
		clear(batch)
		s.wmu.Lock()
		s.queued -= size
		if cap(batch) <= 64 {
			s.spare = batch[:0]
		}
		s.wmu.Unlock()
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
	if !s.srv.router.deliver(ctx, s, iq) {
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
