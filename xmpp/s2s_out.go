package xmpp

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// An s2sOut is the connection on which one of our domains sends to one
// remote domain (RFC 6120 §4: a stream is one direction). Stanzas queue
// until the remote server has accepted our dialback key; db:verify
// requests, which need no authentication, go out as soon as TLS is up.
type s2sOut struct {
	srv           *Server
	local, remote string
	// sender is whom the limiter counts the attempt against: the account
	// whose stanza started it, or the local domain (s2s_limit.go).
	sender string
	// ctx ends at the connect timeout, counted from the first stanza so
	// that time spent waiting for a slot counts too; cancel ends it early.
	ctx    context.Context
	cancel context.CancelFunc
	// dial and stopWait belong to the limiter, under its lock.
	dial     dialState
	stopWait func() bool

	mu sync.Mutex
	// out holds the stanzas for the remote server, from the start: they
	// wait there while the stream is set up, and the writer takes them
	// once it is ready; when the connection ends, what is left bounces.
	out      chan *Element
	ready    bool
	done     bool
	w        *s2sWriter
	verifies map[string]chan bool // "id" of a db:verify sent → its answer
	idle     *time.Timer
	// idleTimeout is S2SIdleTimeout when the stream started.
	idleTimeout time.Duration
	// established is closed when the stream is encrypted (db:verify may
	// be sent), or when the connection failed (err is set).
	established chan struct{}
	err         error
	raw         net.Conn
	stream      *s2sStream
	auth        string // "external" or "dialback" once accepted
}

func pairKey(local, remote string) string { return local + " " + remote }

// outgoing returns the connection from local to remote, starting one if
// there is none; a new one counts against the local domain's budget, as
// the dialback checks that incoming streams ask for do.
func (s *Server) outgoing(local, remote string) *s2sOut {
	return s.outgoingFrom(local, remote, local)
}

// outgoingFrom is outgoing for a stanza of sender. The connection it
// returns may have failed already (done): when there is no room even to
// wait for a slot, it is failed at once and not kept, so that the next
// stanza tries again.
func (s *Server) outgoingFrom(local, remote, sender string) *s2sOut {
	k := pairKey(local, remote)
	s.s2sMu.Lock()
	if o := s.outgoingConns[k]; o != nil {
		s.s2sMu.Unlock()
		return o
	}
	set := s.cur()
	o := &s2sOut{srv: s, local: local, remote: remote, sender: sender, verifies: make(map[string]chan bool),
		established: make(chan struct{}), out: make(chan *Element, set.S2SQueueSize), idleTimeout: set.S2SIdleTimeout}
	o.ctx, o.cancel = context.WithTimeout(s.ctx, set.S2SConnectTimeout)
	// Known before it may start, so that its failure finds and forgets it.
	s.outgoingConns[k] = o
	err := s.s2sDials.admit(o)
	if err != nil {
		delete(s.outgoingConns, k)
	}
	s.s2sMu.Unlock()
	if err != nil {
		o.fail(&s2sError{ResourceConstraintC, err})
	}
	return o
}

// senderOf is whom an outgoing stanza is counted against: the local
// account that sent it, else the bare form of its (server-stamped) from,
// else the local domain.
func senderOf(st *Element, origin *Session, local string) string {
	if origin != nil {
		return origin.bare
	}
	if j, err := jid.Parse(st.Get("from")); err == nil {
		return j.Bare().String()
	}
	return local
}

// sendRemote routes a stanza to another server.
func (s *Server) sendRemote(st *Element, local, remote string, origin *Session) {
	if s.hooks.has(Remote) {
		ev := newEvent()
		ev.Stanza, ev.Origin = st, origin
		ev.To, _ = jid.Parse(st.Get("to"))
		handled := s.hooks.runStanza(s.ctx, Remote, ev)
		bounce := ev.Bounce
		ev.free()
		if handled {
			if bounce != nil {
				s.router.bounce(st, origin, *bounce)
			}
			return
		}
	}
	if !s.remoteAllowed(remote) {
		s.router.bounce(st, origin, StanzaError{Condition: RemoteServerNotFound, Text: "federation with " + remote + " is not allowed"})
		return
	}
	o := s.outgoingFrom(local, remote, senderOf(st, origin, local))
	o.mu.Lock()
	if o.done {
		err := o.err
		o.mu.Unlock()
		s.router.bounce(st, origin, s2sBounce(err, remote))
		return
	}
	o.touch()
	// The writer goroutine sends it: a slow remote server holds up nobody
	// but the stanzas for it.
	select {
	case o.out <- st:
		o.mu.Unlock()
		if k, stanza := kindOf(st.Local); s.Metrics != nil && stanza {
			s.Metrics.StanzaOut(k)
		}
	default:
		o.mu.Unlock()
		if s.Metrics != nil {
			s.Metrics.StanzaDropped(DropS2SQueue)
		}
		s.router.bounce(st, origin, StanzaError{Condition: ResourceConstraintC, Text: "too many stanzas waiting for " + remote})
	}
}

// appendServer serialises a stanza for a server-to-server stream. The
// stream's default namespace is jabber:server, so writing the stanza as if
// the parent were jabber:client leaves its jabber:client elements
// unqualified: they read as jabber:server, with no copy of the stanza.
func appendServer(b []byte, st *Element) []byte { return st.Append(b, NSClient) }

// toClientNamespace moves a stanza read from a server stream, and its
// children, from jabber:server to jabber:client, the namespace the router
// and the sessions work in. It owns the stanza, so it renames in place.
func toClientNamespace(e *Element) {
	if e.Space == NSServer {
		e.Space = NSClient
	}
	for _, k := range e.Elements() {
		toClientNamespace(k)
	}
}

// touch restarts the idle timer; o.mu is held.
func (o *s2sOut) touch() {
	if o.idle != nil {
		o.idle.Reset(o.idleTimeout)
	}
}

// run connects, secures and authenticates the stream, then reads it until
// it ends.
func (o *s2sOut) run() {
	defer o.srv.wg.Done()
	o.fail(o.serve())
}

// serve is run's work; a panic in it (a defect the peer's input reached)
// fails this stream alone.
func (o *s2sOut) serve() (err error) {
	defer o.srv.caught("outgoing federation stream", o.remote, &err)
	external, err := o.connect()
	if err != nil {
		return err
	}
	if external {
		o.authenticated("external")
	}
	return o.read()
}

// stream is the state of the stream being negotiated.
type s2sStream struct {
	g  *guard
	d  *xml.Decoder
	id string
}

func (o *s2sOut) open(conn net.Conn) (*s2sStream, *Element, error) {
	st := &s2sStream{g: newGuard(conn, o.srv.cur().MaxStanzaSize, newRateLimiter(0, 0))}
	st.g.wrote = true
	if _, err := conn.Write(appendS2SHeader(nil, o.local, o.remote, "")); err != nil {
		return nil, nil, err
	}
	st.d = xml.NewDecoder(st.g)
	hdr, err := readHeader(st.d)
	if err != nil {
		return nil, nil, err
	}
	st.id = attr(hdr, "id")
	f, err := NextElement(st.d)
	if err != nil {
		return nil, nil, err
	}
	if f.Space != NSStream || f.Local != "features" {
		return nil, nil, errors.New("xmpp: expected stream features, got " + f.String())
	}
	return st, f, nil
}

func (o *s2sOut) connect() (external bool, err error) {
	s := o.srv
	ctx := o.ctx
	var raw net.Conn
	var direct bool
	for _, a := range s.s2sAddrs(ctx, o.remote) {
		var d net.Dialer
		raw, err = d.DialContext(ctx, "tcp", a.addr)
		if err == nil {
			direct = a.direct
			break
		}
	}
	if raw == nil {
		if err == nil {
			err = errors.New("no address")
		}
		// The dial's own timer may go off just before ctx's.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return false, &s2sError{RemoteServerTimeout, err}
		}
		return false, &s2sError{RemoteServerNotFound, err}
	}
	o.mu.Lock()
	if o.done {
		// Failed meanwhile (shutdown): fail has closed what it knew of.
		o.mu.Unlock()
		raw.Close()
		return false, o.err
	}
	o.raw = raw
	o.mu.Unlock()
	deadline, _ := ctx.Deadline()
	raw.SetDeadline(deadline)
	timeout := func(err error) error {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return &s2sError{RemoteServerTimeout, err}
		}
		return &s2sError{RemoteServerNotFound, err}
	}
	// Dialback authenticates the domain, so a certificate that does not
	// verify is no reason to give up (XEP-0220 §1). Ours goes along, for
	// SASL EXTERNAL.
	tc := tls.Client(raw, &tls.Config{
		ServerName:           o.remote,
		InsecureSkipVerify:   true,
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: s.clientCertificate,
		NextProtos:           []string{"xmpp-server"},
	})
	if !direct {
		st, feat, err := o.open(raw)
		if err != nil {
			return false, timeout(err)
		}
		if feat.Child(NSTLS, "starttls") == nil {
			return false, &s2sError{RemoteServerNotFound, errors.New("the remote server does not offer STARTTLS")}
		}
		raw.Write([]byte(`<starttls xmlns="` + NSTLS + `"/>`))
		if el, err := NextElement(st.d); err != nil || el.Local != "proceed" {
			return false, timeout(errors.Join(errors.New("STARTTLS refused"), err))
		}
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return false, timeout(err)
	}
	st, feat, err := o.open(tc)
	if err != nil {
		return false, timeout(err)
	}
	if mechs := feat.Child(NSSASL, "mechanisms"); mechs != nil && hasMechanism(mechs, "EXTERNAL") {
		// The peer finds our certificate valid for our domain (RFC 6120
		// §6.4, §13.7.1.2): no dialback needed.
		tc.Write([]byte(`<auth xmlns="` + NSSASL + `" mechanism="EXTERNAL">=</auth>`))
		el, err := NextElement(st.d)
		if err != nil {
			return false, timeout(err)
		}
		if el.Local == "success" {
			if st, _, err = o.open(tc); err != nil {
				return false, timeout(err)
			}
			o.mu.Lock()
			o.w, o.stream = &s2sWriter{conn: tc}, st
			o.mu.Unlock()
			close(o.established)
			return true, nil
		}
		// A failure: dialback on the same stream.
	}
	o.mu.Lock()
	o.w = &s2sWriter{conn: tc}
	o.stream = st
	o.mu.Unlock()
	close(o.established)

	key := s.dialbackKey(o.remote, o.local, st.id)
	b := []byte(`<db:result`)
	b = appendAttrs(b, "from", o.local, "to", o.remote)
	b = append(b, '>')
	b = append(append(b, key...), "</db:result>"...)
	if err := o.w.write(b); err != nil {
		return false, timeout(err)
	}
	return false, nil
}

func hasMechanism(mechs *Element, name string) bool {
	for _, m := range mechs.Elements() {
		if m.Local == "mechanism" && m.Text() == name {
			return true
		}
	}
	return false
}

// read handles what the remote server sends on our stream: the answer to
// our key, answers to db:verify, and the stream's end.
func (o *s2sOut) read() error {
	o.mu.Lock()
	st := o.stream
	o.mu.Unlock()
	for {
		el, err := NextElement(st.d)
		if err != nil {
			return &s2sError{RemoteServerTimeout, err}
		}
		switch {
		case el.Space == NSDialback && el.Local == "result":
			if el.Get("type") != "valid" {
				return &s2sError{RemoteServerNotFound, errDialbackFailed}
			}
			o.authenticated("dialback")
		case el.Space == NSDialback && el.Local == "verify":
			o.mu.Lock()
			ch := o.verifies[el.Get("id")]
			delete(o.verifies, el.Get("id"))
			o.mu.Unlock()
			if ch != nil {
				ch <- el.Get("type") == "valid"
			}
		case el.Space == NSStream && el.Local == "error":
			return &s2sError{RemoteServerNotFound, errors.New("stream error: " + el.String())}
		}
	}
}

// authenticated makes the stream ready and sends what waited.
func (o *s2sOut) authenticated(how string) {
	o.mu.Lock()
	if o.done {
		// Failed or closed meanwhile (shutdown): no writer may start, it
		// would find the queue already drained and bounced by fail.
		o.mu.Unlock()
		return
	}
	o.auth = how
	o.ready = true
	o.stream.g.Conn.SetDeadline(time.Time{})
	o.idle = time.AfterFunc(o.idleTimeout, o.close)
	o.srv.wg.Add(1)
	go o.write(o.w, o.out)
	o.mu.Unlock()
	// Set up: the slot goes to the next attempt.
	o.cancel()
	o.srv.s2sDials.release(o)
	o.srv.log.Info("s2s connection ready", "from", o.local, "to", o.remote, "auth", how)
}

// write sends what is queued for the remote server, many stanzas per
// write when they pile up, until the connection ends.
func (o *s2sOut) write(w *s2sWriter, out chan *Element) {
	defer o.srv.wg.Done()
	var buf []byte
	for st := range out {
		buf = appendServer(buf[:0], st)
		for more := true; more && len(buf) < writeBatch; {
			select {
			case st, ok := <-out:
				if !ok {
					more = false
					break
				}
				buf = appendServer(buf, st)
			default:
				more = false
			}
		}
		if err := w.write(buf); err != nil {
			// fail bounces what is still queued.
			o.fail(&s2sError{RemoteServerTimeout, err})
			return
		}
	}
}

// verify asks the remote server, as the authority for its domain, whether
// key is the one it made for a stream with id to local (XEP-0220 §2.1.3).
func (o *s2sOut) verify(ctx context.Context, id, key string) (bool, error) {
	select {
	case <-o.established:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	o.mu.Lock()
	if o.err != nil {
		o.mu.Unlock()
		return false, o.err
	}
	ch := make(chan bool, 1)
	o.verifies[id] = ch
	w := o.w
	o.mu.Unlock()
	b := []byte(`<db:verify`)
	b = appendAttrs(b, "from", o.local, "to", o.remote, "id", id)
	b = append(b, '>')
	b = append(append(b, key...), "</db:verify>"...)
	if err := w.write(b); err != nil {
		return false, err
	}
	select {
	case ok, answered := <-ch:
		if !answered {
			return false, errors.New("xmpp: the connection to the authoritative server ended")
		}
		return ok, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// closeS2S ends every outgoing connection, at shutdown.
func (s *Server) closeS2S() {
	s.s2sMu.Lock()
	var all []*s2sOut
	for _, o := range s.outgoingConns {
		all = append(all, o)
	}
	s.s2sMu.Unlock()
	for _, o := range all {
		o.close()
	}
}

// close ends an idle connection.
func (o *s2sOut) close() {
	o.mu.Lock()
	w := o.w
	o.mu.Unlock()
	if w != nil {
		w.write([]byte("</stream:stream>"))
	}
	o.fail(&s2sError{RemoteServerTimeout, errIdle})
}

// fail ends the connection: it is forgotten, and what waited bounces.
func (o *s2sOut) fail(err error) {
	s := o.srv
	s.s2sMu.Lock()
	if s.outgoingConns[pairKey(o.local, o.remote)] == o {
		delete(s.outgoingConns, pairKey(o.local, o.remote))
	}
	s.s2sMu.Unlock()
	o.mu.Lock()
	if o.done {
		o.mu.Unlock()
		return
	}
	o.done, o.ready, o.err = true, false, err
	// Senders check done under mu, so nobody sends on the closed queue;
	// what is in it is drained below (the writer may take some first,
	// and then finds its connection closed).
	close(o.out)
	if o.idle != nil {
		o.idle.Stop()
	}
	select {
	case <-o.established:
	default:
		close(o.established)
	}
	for id, ch := range o.verifies {
		close(ch)
		delete(o.verifies, id)
	}
	raw := o.raw
	o.mu.Unlock()
	o.cancel()
	if raw != nil {
		raw.Close()
	}
	// After the close: the next attempt's socket replaces this one.
	s.s2sDials.release(o)
	switch {
	case errors.Is(err, errIdle):
	case errors.Is(err, errDialQueueFull), errors.Is(err, errDialSenderQueueFull):
		// One per stanza refused: the sender's flood, not news.
		s.log.Debug("s2s connection refused", "from", o.local, "to", o.remote, "sender", o.sender, "err", err)
	default:
		s.log.Info("s2s connection ended", "from", o.local, "to", o.remote, "err", err)
	}
	e := s2sBounce(err, o.remote)
	for st := range o.out {
		s.router.bounce(st, nil, e)
	}
}

var errIdle = errors.New("idle")

// s2sBounce is the error returned for stanzas that a connection to remote
// could not carry: the condition the failure calls for (RFC 6120 §8.3.3.16,
// §8.3.3.17, §8.3.3.18), with a text for the user that names no address.
func s2sBounce(err error, remote string) StanzaError {
	var se *s2sError
	if !errors.As(err, &se) {
		return StanzaError{Condition: RemoteServerNotFound, Text: "the server of " + remote + " could not be reached"}
	}
	e := StanzaError{Condition: se.cond}
	switch {
	case errors.Is(err, errDialQueueFull):
		e.Text = "too many connections to other servers are being set up; try again later"
	case errors.Is(err, errDialSenderQueueFull):
		e.Text = "you have too many connections to other servers being set up; try again later"
	case errors.Is(err, errDialWaitTimeout):
		e.Text = "the connection to " + remote + " could not start within the connect timeout: too many are being set up"
	case errors.Is(err, errIdle):
		e.Text = "the connection to " + remote + " was closed"
	case se.cond == RemoteServerTimeout:
		e.Text = "the server of " + remote + " did not answer in time"
	default:
		e.Text = "the server of " + remote + " could not be reached"
	}
	return e
}
