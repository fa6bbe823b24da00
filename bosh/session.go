package bosh

import (
	"bytes"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// A session is one BOSH session (XEP-0124 §7). To the XMPP server it is the
// connection its stream runs on (net.Conn): Read gives what the client's
// requests carried, in rid order; Write collects the server's stream for the
// responses.
type session struct {
	h      *Handler
	sid    string
	to     string
	lang   string
	addr   net.Addr
	secure bool

	// Negotiated at creation (§7.1, §7.2).
	wait       time.Duration
	hold       int
	requests   int
	inactivity time.Duration
	acks       bool // the client asked for response acknowledgements (§9)
	legacy     bool // a client older than 1.6: HTTP status codes for errors

	mu sync.Mutex
	// Client to server.
	in       []byte
	inEOF    bool          // no more input after in
	readable chan struct{} // signalled when in grows or input ends
	readDL   deadline
	// Server to client.
	split    xmpp.StreamSplitter
	header   xmpp.StreamHeader
	out      [][]byte
	outBytes int
	writable chan struct{} // signalled when out is taken
	writeDL  deadline
	ended    bool   // the server ended the stream
	streamEr []byte // the <stream:error/> it ended with
	closed   bool   // the server closed the connection
	gone     chan struct{}
	// Requests.
	next      int64              // the rid to process next
	waiting   map[int64]*request // arrived before their turn (§14.2)
	held      []*request         // processed, waiting for a response
	answers   []answer           // the last responses, for repeated rids (§14.3)
	idle      *time.Timer        // inactivity (§7.1) or pause (§10)
	lastEmpty time.Time          // the last request without payload (polling, §11)
	idlePause time.Duration      // the next idle period is a pause (§10)
	removed   bool
}

// A request is one HTTP request of a session.
type request struct {
	rid    int64
	b      *body
	create bool
	// resp receives the response once; a repeated rid replaces it.
	resp chan []byte
}

type answer struct {
	rid  int64
	body []byte
}

func newRequest(rid int64, b *body) *request {
	return &request{rid: rid, b: b, resp: make(chan []byte, 1)}
}

// handle takes one request of the session in rid order and returns the
// channel its response will arrive on; a response that is ready at once
// (a repeated rid, an error) is returned instead.
func (s *session) handle(rid int64, b *body) (ch chan []byte, now []byte, terminal bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return nil, terminateBody(ItemNotFound), true
	}
	s.stopIdle()
	defer s.startIdle()
	switch {
	case rid < s.next:
		for _, a := range s.answers {
			if a.rid == rid {
				return nil, a.body, false // the client did not get it (§14.3)
			}
		}
		for _, r := range s.held {
			if r.rid == rid {
				// Processed, not yet answered: this connection waits instead
				// of the broken one.
				r.resp = make(chan []byte, 1)
				return r.resp, nil, false
			}
		}
		return nil, s.terminate(ItemNotFound), true
	case rid >= s.next+int64(s.requests):
		return nil, s.terminate(ItemNotFound), true // outside the window (§14.2)
	case rid > s.next:
		r := newRequest(rid, b)
		s.waiting[rid] = r // held until the missing ones arrive
		return r.resp, nil, false
	}
	r := newRequest(rid, b)
	if now, done := s.process(r); done {
		return nil, now, true
	}
	for {
		w := s.waiting[s.next]
		if w == nil {
			break
		}
		delete(s.waiting, s.next)
		if body, done := s.process(w); done {
			w.resp <- body
			break
		}
	}
	return r.resp, nil, false
}

// process acts on a request whose turn has come; true means the session
// ended and body is the request's response.
func (s *session) process(r *request) ([]byte, bool) {
	s.next = r.rid + 1
	b := r.b
	if ack, ok := b.int("ack"); ok && !r.create {
		// The client has the responses up to ack (§9.2).
		keep := s.answers[:0]
		for _, a := range s.answers {
			if a.rid > ack {
				keep = append(keep, a)
			}
		}
		s.answers = keep
	}
	// Refusals first, before the request is held.
	if len(b.payload) == 0 && s.hold == 0 && !r.create {
		// Polling more often than allowed is overactivity (§11).
		if time.Since(s.lastEmpty) < s.h.polling() {
			return s.terminate(PolicyViolation), true
		}
		s.lastEmpty = time.Now()
	}
	pause := time.Duration(-1)
	if p, ok := b.int("pause"); ok && !r.create {
		if pause = time.Duration(p) * time.Second; pause > s.h.maxPause() {
			return s.terminate(PolicyViolation), true
		}
	}
	for _, p := range b.payload {
		s.in = append(s.in, p...)
	}
	if b.attr["xmpp:restart"] == "true" || b.attr["xmpp:restart"] == "1" {
		s.in = xmpp.AppendStreamOpen(s.in, xmpp.StreamHeader{To: s.to, Version: "1.0", Lang: s.lang})
	}
	if b.attr["type"] == "terminate" {
		s.in = append(s.in, "</stream:stream>"...)
		s.inEOF = true
		s.signal(s.readable)
		for len(s.held) > 0 {
			s.answer(s.held[0])
		}
		s.remove()
		body := terminateBody("")
		s.remember(r.rid, body)
		return body, true
	}
	s.signal(s.readable)
	s.held = append(s.held, r)
	if pause >= 0 {
		// Answer everything now; the client is away for up to pause (§10).
		for len(s.held) > 0 {
			s.answer(s.held[0])
		}
		s.idlePause = pause
		return nil, false
	}
	for len(s.held) > s.hold {
		s.answer(s.held[0]) // the oldest makes room (§12)
	}
	s.flush()
	return nil, false
}

// flush answers the oldest held request if there is anything to send.
func (s *session) flush() {
	if len(s.held) == 0 {
		return
	}
	if len(s.out) > 0 || s.ended || s.closed {
		s.answer(s.held[0])
	}
	if s.ended || s.closed {
		for len(s.held) > 0 {
			s.answer(s.held[0])
		}
		s.remove()
	}
}

// answer responds to a held request with what the server has written.
func (s *session) answer(r *request) {
	for i, h := range s.held {
		if h == r {
			s.held = append(s.held[:i], s.held[i+1:]...)
			break
		}
	}
	var body []byte
	if s.ended || s.closed {
		cond := Condition("")
		var payload [][]byte
		payload = append(payload, s.out...)
		if s.streamEr != nil {
			cond = RemoteStreamError
			if bytes.Contains(s.streamEr, []byte("<system-shutdown")) {
				cond = SystemShutdown
			}
			payload = append(payload, s.streamEr)
		}
		body = terminateBody(cond, payload...)
	} else {
		resp := newResponse()
		if r.create {
			s.creationAttrs(resp)
		}
		if s.acks && r.rid != s.next-1 && !r.create {
			// Not the latest request: tell the client which is (§9.1).
			resp.attr("ack", strconv.FormatInt(s.next-1, 10))
		}
		body = resp.close(s.out)
	}
	s.out, s.outBytes = nil, 0
	s.signal(s.writable)
	s.remember(r.rid, body)
	r.resp <- body
	s.startIdle()
}

// creationAttrs are the session creation response's attributes (§7.2,
// XEP-0206 §4).
func (s *session) creationAttrs(r *response) {
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	r.attr("sid", s.sid)
	r.attr("wait", secs(s.wait))
	r.attr("requests", strconv.Itoa(s.requests))
	r.attr("hold", strconv.Itoa(s.hold))
	r.attr("inactivity", secs(s.inactivity))
	r.attr("polling", secs(s.h.polling()))
	r.attr("maxpause", secs(s.h.maxPause()))
	r.attr("ver", Version)
	r.attr("from", s.h.Server.Domain)
	if s.header.ID != "" {
		r.attr("authid", s.header.ID)
	}
	r.attr("secure", strconv.FormatBool(s.secure))
	if s.acks {
		r.attr("ack", strconv.FormatInt(s.next-1, 10))
	}
	r.b = append(r.b, ` xmlns:xmpp="`+NSXBOSH+`" xmpp:version="1.0" xmpp:restartlogic="true"`...)
}

// remember keeps a response for a repeated rid.
func (s *session) remember(rid int64, body []byte) {
	s.answers = append(s.answers, answer{rid, body})
	if n := len(s.answers) - s.requests; n > 0 {
		s.answers = append(s.answers[:0], s.answers[n:]...)
	}
}

// terminate ends the session with a condition, answering every waiting
// request, and returns the response for the current one.
func (s *session) terminate(cond Condition) []byte {
	body := terminateBody(cond)
	for _, r := range s.held {
		r.resp <- body
	}
	s.held = nil
	for _, r := range s.waiting {
		r.resp <- body
	}
	clear(s.waiting)
	s.endInput()
	s.remove()
	return body
}

// endInput ends the client's stream: the server reads its end and ends the
// session (the account goes unavailable).
func (s *session) endInput() {
	if !s.inEOF {
		s.in = append(s.in, "</stream:stream>"...)
		s.inEOF = true
		s.signal(s.readable)
	}
}

func (s *session) remove() {
	if !s.removed {
		s.removed = true
		s.h.remove(s.sid)
	}
}

// startIdle starts the inactivity timer when no request is held (§7.1).
// Requests that wait for their turn do not count: the one they wait for
// may never come (a client that skips a rid and goes away once kept its
// session, and the requests, for ever); they are answered with the
// session's end when the inactivity time passes.
func (s *session) startIdle() {
	if len(s.held) > 0 || s.removed {
		return
	}
	d := s.inactivity
	if s.idlePause > 0 {
		d, s.idlePause = s.idlePause, 0
	}
	if s.idle == nil {
		s.idle = time.AfterFunc(d, s.expire)
	} else {
		s.idle.Reset(d)
	}
}

func (s *session) stopIdle() {
	if s.idle != nil {
		s.idle.Stop()
	}
}

// expire ends a session the client has left.
func (s *session) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) > 0 || s.removed {
		return
	}
	s.h.log().Info("BOSH session inactive", "sid", s.sid, "remote", s.addr.String())
	s.terminate("")
}

// timeout answers a held request whose wait is over, with what there is
// (usually nothing, §7.1). A request that waits for its turn gets nil: it
// must not be answered before it has been processed (or the session ends).
// One that a repeated rid took over (§14.3) gets an empty body at once:
// its response goes to the new connection, and nothing else would ever end
// this one, which a client could keep open for ever.
func (s *session) timeout(ch chan []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.held {
		if r.resp == ch {
			s.answer(r)
			return <-ch
		}
	}
	select {
	case b := <-ch:
		return b // answered meanwhile
	default:
	}
	for _, r := range s.waiting {
		if r.resp == ch {
			return nil
		}
	}
	if s.removed {
		return terminateBody(ItemNotFound)
	}
	return newResponse().close(nil)
}

func (s *session) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Read gives the server the client's stream.
func (s *session) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if len(s.in) > 0 {
			n := copy(p, s.in)
			s.in = s.in[n:]
			if len(s.in) == 0 {
				s.in = nil
			}
			s.mu.Unlock()
			return n, nil
		}
		eof, closed := s.inEOF, s.closed
		dl := s.readDL.done()
		s.mu.Unlock()
		switch {
		case closed:
			return 0, net.ErrClosed
		case eof:
			return 0, io.EOF
		}
		select {
		case <-s.readable:
		case <-dl:
			return 0, os.ErrDeadlineExceeded
		case <-s.gone:
		}
	}
}

// maxOutput bounds what waits for the client; the server's writes then
// block, as on a TCP connection whose peer does not read.
const maxOutput = 1 << 20

// Write takes the server's stream apart for the responses.
func (s *session) Write(p []byte) (int, error) {
	s.mu.Lock()
	for s.outBytes > maxOutput && !s.closed {
		dl := s.writeDL.done()
		s.mu.Unlock()
		select {
		case <-s.writable:
		case <-dl:
			return 0, os.ErrDeadlineExceeded
		case <-s.gone:
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	s.split.Write(p, func(part xmpp.StreamPart) error {
		switch part.Kind {
		case xmpp.PartHeader:
			s.header = part.Header
		case xmpp.PartElement:
			el := part.AppendElement(make([]byte, 0, part.Len()))
			if bytes.HasPrefix(el, []byte("<stream:error")) {
				s.streamEr = el
				return nil
			}
			s.out = append(s.out, el)
			s.outBytes += len(el)
		case xmpp.PartEnd:
			s.ended = true
		}
		return nil
	})
	s.flush()
	return len(p), nil
}

// Close is the server closing the connection: the session ends.
func (s *session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.gone)
	s.flush()
	return nil
}

func (s *session) LocalAddr() net.Addr  { return s.h.local }
func (s *session) RemoteAddr() net.Addr { return s.addr }

// Transport names the transport for xmpp.Session.Transport.
func (s *session) Transport() string { return xmpp.TransportBOSH }

// StreamManagement tells the server not to offer stream management
// (XEP-0198) on this stream: BOSH acknowledges requests itself (XEP-0124
// §9), and a BOSH session outlives its HTTP connections anyway.
func (s *session) StreamManagement() bool { return false }

func (s *session) SetDeadline(t time.Time) error {
	s.readDL.set(t)
	s.writeDL.set(t)
	return nil
}
func (s *session) SetReadDeadline(t time.Time) error  { s.readDL.set(t); return nil }
func (s *session) SetWriteDeadline(t time.Time) error { s.writeDL.set(t); return nil }

// deadline is a settable deadline whose passing closes a channel.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	c     chan struct{} // closed when the deadline has passed
	gen   uint64
}

// done returns a channel that is closed when the deadline passes.
func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		d.c = make(chan struct{})
	}
	return d.c
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.gen++
	if d.c == nil || isClosed(d.c) {
		d.c = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	c, gen := d.c, d.gen
	fire := func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen && !isClosed(c) {
			close(c)
		}
	}
	if dur := time.Until(t); dur > 0 {
		d.timer = time.AfterFunc(dur, fire)
		return
	}
	close(c)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
