package xmpp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
)

// A Session is one client stream bound to a full JID. One goroutine reads
// and parses stanzas and hands them to the router. Writes are queued; while
// the queue is not empty a goroutine writes it out, many stanzas per system
// call, and ends when it is drained, so that an idle session has no writer
// and no write buffer.
//
// With stream management (XEP-0198, sm.go) a session outlives its
// connection: it counts stanzas both ways, keeps what the client has not
// acknowledged, hibernates when the connection breaks, and goes on with a
// new connection that resumes it, or ends when nobody does in time.
type Session struct {
	srv  *Server
	cur  atomic.Pointer[conn] // the connection; a resumed session gets another
	jid  jid.JID
	full string
	bare string
	// since is when the session was bound (Unix nanoseconds).
	since int64

	closing   chan struct{} // closed when the session is to end for good
	closeOnce sync.Once
	endOnce   sync.Once
	ended     chan struct{} // closed when end is done

	wmu   sync.Mutex
	queue [][]byte // waiting to be written
	spare [][]byte // the previous queue's array, for reuse
	// queued is the bytes of the queue and of the batch being written.
	queued  int
	writing bool // a writer goroutine runs
	closed  bool // Close was called; final is the last write
	final   []byte
	// live is true while a connection is attached and usable; the writer
	// writes only then. writerDone is closed when the writer has written
	// final (or found the connection gone) after Close.
	live       bool
	writerDone chan struct{}
	// linger, while lingering, starts a writer for presence that waits to
	// share a write (startWriterSoon); made on first use.
	linger    *time.Timer
	lingering bool
	// sm is stream management's state once the client enabled it, and
	// hibernation its wait for a resumption (sm.go).
	sm          *smState
	hibernation *time.Timer
	// smIn counts the stanzas handled from the client once stream
	// management is on (XEP-0198 §4); the reader alone adds to it.
	smIn       atomic.Uint32
	smCounting atomic.Bool

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
		srv:        s,
		jid:        j,
		full:       j.String(),
		bare:       j.Bare().String(),
		since:      time.Now().UnixNano(),
		closing:    make(chan struct{}),
		ended:      make(chan struct{}),
		live:       true,
		writerDone: make(chan struct{}),
	}
	sess.cur.Store(c)
	return sess
}

// c is the session's current connection.
func (s *Session) c() *conn { return s.cur.Load() }

// logger is the server's, with the session's addresses. It is made when
// something is logged rather than kept: an idle session should not hold it.
func (s *Session) logger() *slog.Logger {
	return s.srv.log.With("remote", s.c().remote, "jid", s.full)
}

// JID is the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// Available reports whether the client has sent available presence, and its
// priority (RFC 6121 §4.7.2.3). A hibernated session stays available.
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
	return time.Since(time.Unix(0, s.c().guard.lastRead.Load()))
}

// Hibernated reports whether the session waits for its client to resume it
// (XEP-0198 §5).
func (s *Session) Hibernated() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.hibernation != nil
}

// ending reports whether Close was called: the session takes no more
// stanzas, and the router looks past it (a stanza for it goes where it
// would go without it: another resource, offline storage).
func (s *Session) ending() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// awaitEnd waits until the session has ended (end is done), at most d;
// false when it has not.
func (s *Session) awaitEnd(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ended:
		return true
	case <-t.C:
		return false
	}
}

// replaceWait bounds how long a bind waits for the session it replaces to
// end; the old one's writer gives up on a client that does not read after
// 2 s.
const replaceWait = 5 * time.Second

// register makes the session routable, replacing an older session bound to
// the same full JID (RFC 6120 §7.7.2.2), on this node or another; false
// when the account has as many sessions as it may have, on all nodes
// together.
func (s *Session) register() bool {
	elsewhere, holder := s.srv.elsewhere(s.srv.ctx, s.bare, s.jid.Resourcepart())
	old, ok := s.srv.router.register(s, s.srv.cur().MaxSessionsPerAccount, elsewhere)
	if !ok {
		return false
	}
	if old != nil {
		old.Close(&StreamError{Condition: Conflict, Text: "replaced by a new session for the same resource"})
		// The old session's end is about its full JID, now this session's
		// too: its unavailable presence on the client's behalf, the rooms
		// it leaves, its entry in the registry. It must be over before
		// this session can send anything, or it undoes what this one does
		// (a room it joins again took it for the old session's and then
		// let it go; the soak found it). The client waits for its bind
		// meanwhile.
		old.awaitEnd(replaceWait)
	}
	if holder != "" {
		s.srv.replaceOn(holder, s.full)
	}
	return true
}

// serve runs the negotiated session on connection c until c's stream ends.
// The negotiation's mellium session is not kept: the guard frames stanzas,
// with whatever the client sent after binding, and parseStanza parses them.
//
// It is the goroutine the session runs on while c is its connection (the
// caller added it to the server's wait group): it ends the session, or
// hibernates it, or, when a resumption took c's place, just returns.
func (s *Session) serve(c *conn, resumed bool) {
	if resumed {
		s.logger().Info("session resumed")
		s.srv.hooks.runSession(s.srv.ctx, SessionResumed, s)
	} else {
		s.logger().Info("session started")
		s.srv.hooks.runSession(s.srv.ctx, SessionBound, s)
	}
	c.auth = nil
	err := s.readLoopCaught(c)
	switch {
	case s.c() != c:
		// A resumption took over on another connection.
		c.raw.Close()
		s.srv.wg.Done()
	case s.hibernate(c, err):
		s.srv.wg.Done()
	default:
		s.end(err)
	}
}

// readLoopCaught is readLoop, with a panic (a defect a stanza reached)
// ending this session with <internal-server-error/>, not the server.
func (s *Session) readLoopCaught(c *conn) (err error) {
	defer s.srv.caught("session", c.remote, &err)
	return s.readLoop(c)
}

// end ends the session for good: it is no longer routable, the modules
// learn it, the stream is closed (with the stream error err calls for), and
// what the client never acknowledged goes elsewhere (stream management).
// It runs once, on a goroutine the server's wait group counts.
func (s *Session) end(err error) {
	s.endOnce.Do(func() {
		s.srv.router.unregister(s)
		s.srv.forgetResumable(s)
		s.srv.hooks.runSession(s.srv.ctx, SessionEnded, s)
		var se *StreamError
		if err != nil {
			if e, ok := streamErrorFor(err); ok {
				se = &e
			}
		}
		s.Close(se)
		s.wmu.Lock()
		live := s.live
		s.wmu.Unlock()
		if live {
			<-s.writerDone
		}
		s.c().raw.Close()
		s.redeliver()
		s.logger().Info("session ended", "err", err)
		close(s.ended)
	})
	s.srv.wg.Done()
}

// readLoop reads and handles what the client sends on c until its stream
// ends: nil when the client closed it, else why it ended.
func (s *Session) readLoop(c *conn) error {
	g := c.guard
	m := s.srv.Metrics
	for {
		b, err := g.next()
		if err != nil {
			if err == io.EOF {
				return nil // the client closed its stream
			}
			return err
		}
		var read time.Time
		if m != nil {
			read = time.Now()
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
		if s.ending() && !(el.Space == NSSM && el.Local == "a") {
			// Closing (a shutdown, a conflict): what the client sends now
			// is not handled, hence not counted nor acknowledged (XEP-0198
			// §4), and it knows to send it again. Its acknowledgements
			// still count: what they cover is not handed on twice.
			continue
		}
		kind, stanza := kindOf(el.Local)
		stanza = stanza && el.Space == NSClient && m != nil
		if stanza {
			m.StanzaIn(kind)
		}
		if err := s.handle(el); err != nil {
			return err
		}
		if stanza {
			m.Routed(kind, time.Since(read))
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
	if s.smCounting.Load() {
		s.smIn.Add(1) // handled, whatever becomes of it (XEP-0198 §4)
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
		if !s.runOut(ctx, MessageOut, el, false) {
			r.Route(ctx, el, s)
		}
	case "presence":
		was, _ := s.Available()
		broadcast := el.Get("to") == ""
		if broadcast {
			s.setPresence(el, was)
		}
		if !s.runOut(ctx, PresenceOut, el, was) && !broadcast {
			r.Route(ctx, el, s)
		}
		if broadcast {
			s.srv.hooks.runSession(ctx, PresenceChanged, s)
		}
	}
	return nil
}

// runOut runs the hooks of a stage for a stanza the client sent (MessageOut,
// PresenceOut), and sends the error a hook chose back to the client; true
// when a hook handled the stanza.
func (s *Session) runOut(ctx context.Context, stage Stage, el *Element, was bool) bool {
	if !s.srv.hooks.has(stage) {
		return false
	}
	ev := newEvent()
	ev.Stanza, ev.Session, ev.WasAvailable = el, s, was
	handled := s.srv.hooks.runStanza(ctx, stage, ev)
	bounce := ev.Bounce
	ev.free()
	if handled && bounce != nil {
		s.srv.router.bounce(el, s, *bounce)
	}
	return handled
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

// sendBytes queues a serialised stanza. When the queue is full the client is
// not keeping up; it alone is disconnected, so that nobody else waits for
// it. With stream management the stanza is counted and kept until the
// client acknowledges it, also while the session hibernates.
func (s *Session) sendBytes(b []byte) bool {
	return s.enqueue(b, true, false)
}

// sendPresence is sendBytes for presence, which may wait up to the
// server's PresenceLinger for more to share its write.
func (s *Session) sendPresence(b []byte) bool {
	return s.enqueue(b, true, true)
}

// sendNonza queues a top-level element that is not a stanza (stream
// management's own), which stream management does not count.
func (s *Session) sendNonza(b []byte) bool {
	return s.enqueue(b, false, false)
}

func (s *Session) enqueue(b []byte, stanza, soon bool) bool {
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return false
	}
	if stanza && s.sm != nil {
		if err := s.sm.sent(s, b); err != nil {
			s.wmu.Unlock()
			s.Close(err)
			return false
		}
		if !s.live {
			s.wmu.Unlock()
			return true // kept for the resumption
		}
	}
	set := s.srv.cur()
	if len(s.queue) >= set.QueueSize {
		s.wmu.Unlock()
		s.dropped()
		s.Close(&StreamError{Condition: ResourceConstraint, Text: "too many stanzas waiting for delivery"})
		return false
	}
	// Bytes bound the queue too: a few large stanzas to a client that does
	// not read would otherwise hold hundreds of megabytes. One stanza is
	// always taken when nothing waits, whatever its size.
	if s.queued > 0 && s.queued+len(b) > set.QueueBytes {
		s.wmu.Unlock()
		s.dropped()
		s.Close(&StreamError{Condition: ResourceConstraint, Text: "too much data waiting for delivery"})
		return false
	}
	s.queued += len(b)
	s.queue = append(s.queue, b)
	if stanza && s.sm != nil {
		if r := s.sm.requestAck(); r != nil {
			s.queue = append(s.queue, r)
		}
	}
	if soon {
		s.startWriterSoon()
	} else {
		s.startWriter()
	}
	s.wmu.Unlock()
	return true
}

// dropped counts a session dropped for a full queue, and the stanza that
// did not fit, once: a client that does not read is refused every stanza
// after the first until its session has ended.
func (s *Session) dropped() {
	m := s.srv.Metrics
	if m == nil {
		return
	}
	select {
	case <-s.closing:
		return // dropped already, or ending anyway
	default:
	}
	m.SessionDropped()
	m.StanzaDropped(DropSessionQueue)
}

// DefaultPresenceLinger is how long presence may wait in a session's queue
// before a writer starts (Server.PresenceLinger). A member of a large team gets a colleague's presence
// at every sign-in, often many a second at nine in the morning; written
// one by one, each costs a goroutine, a TLS record and a system call, the
// largest part of the server's work then. Waiting a few milliseconds,
// which nobody sees in a contact's presence, lets them share writes.
// Anything else queued meanwhile starts the writer at once and takes the
// waiting presence along.
const DefaultPresenceLinger = 20 * time.Millisecond

// startWriterSoon starts a writer within the server's PresenceLinger unless
// one runs or is due; called with wmu held.
func (s *Session) startWriterSoon() {
	d := s.srv.PresenceLinger
	if d < 0 {
		s.startWriter()
		return
	}
	if s.writing || !s.live || s.lingering {
		return
	}
	s.lingering = true
	if s.linger == nil {
		s.linger = time.AfterFunc(d, s.lingerDone)
	} else {
		s.linger.Reset(d)
	}
}

func (s *Session) lingerDone() {
	s.wmu.Lock()
	s.lingering = false
	if !s.closed && len(s.queue) > 0 {
		s.startWriter()
	}
	s.wmu.Unlock()
}

// startWriter starts a writer unless one runs; called with wmu held.
func (s *Session) startWriter() {
	if !s.writing && s.live {
		s.writing = true
		go s.writeQueue()
	}
}

// Close ends the session with an optional stream error; it may be called
// from any goroutine, any number of times. What was queued before is still
// written, then the stream's end, then the connection is closed. A
// hibernated session ends at once.
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
		if s.linger != nil {
			s.linger.Stop()
		}
		hibernated := s.hibernation != nil
		if hibernated {
			s.hibernation.Stop()
			s.setHibernation(nil)
		}
		live := s.live
		if live {
			// A writer stuck on a client that does not read gives up soon.
			// Set under wmu, so that a writer cannot put its longer
			// deadline back.
			s.c().raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if !s.writing {
				s.writing = true
				go s.writeQueue()
			}
		}
		s.wmu.Unlock()
		close(s.closing)
		if hibernated {
			s.srv.wg.Add(1)
			go s.end(nil)
		}
	})
}

const writeTimeout = 30 * time.Second

// writeBatch is the most one write system call carries.
const writeBatch = 16 << 10

var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, writeBatch); return &b }}

// writeQueue writes until the queue is empty; after Close, it writes the
// stream's end and closes the connection. It writes below the guard, whose
// bookkeeping only matters while negotiating, to the current connection:
// after a resumption, the new one.
func (s *Session) writeQueue() {
	bp := writeBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		*bp = buf[:0]
		writeBuffers.Put(bp)
	}()
	for {
		s.wmu.Lock()
		c := s.c()
		batch, closed := s.queue, s.closed
		if !s.live {
			// The connection broke: what is counted waits for a
			// resumption, the rest is moot.
			s.queue, s.queued, s.writing = s.queue[:0], 0, false
			if closed {
				s.closeWriterDone()
			}
			s.wmu.Unlock()
			return
		}
		if len(batch) == 0 {
			if closed {
				s.wmu.Unlock()
				c.guard.Conn.Write(s.final)
				c.raw.Close()
				s.wmu.Lock()
				s.closeWriterDone()
				s.writing = false
				s.wmu.Unlock()
				return
			}
			s.writing = false
			s.wmu.Unlock()
			return
		}
		s.queue, s.spare = s.spare[:0], nil
		if !closed {
			c.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		s.wmu.Unlock()
		failed := false
		write := func(b []byte) {
			if failed {
				return
			}
			if _, err := c.guard.Conn.Write(b); err != nil {
				failed = true
				c.raw.Close() // the reader ends too, and decides what follows
			}
		}
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
		if s.c() == c {
			s.queued -= size
		}
		if cap(batch) <= 64 {
			s.spare = batch[:0]
		}
		if failed && s.c() == c {
			// Nothing more can be written here; the reader will find the
			// connection closed and end or hibernate the session.
			s.live = false
		}
		s.wmu.Unlock()
	}
}

// closeWriterDone signals end that the final write is over; called with
// wmu held.
func (s *Session) closeWriterDone() {
	select {
	case <-s.writerDone:
	default:
		close(s.writerDone)
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
