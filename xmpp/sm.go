package xmpp

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
)

// NSSM is stream management's namespace (XEP-0198).
const NSSM = "urn:xmpp:sm:3"

// Defaults of stream management's settings.
const (
	DefaultSMResumeTimeout = 5 * time.Minute
	// DefaultSMMaxUnacked is above the largest team a roster is expected
	// to hold: a member's initial presence brings every colleague's at
	// once, before the client can acknowledge any (TestLargeTeamLoginWithSM).
	// The bytes kept are bounded separately (four times QueueBytes).
	DefaultSMMaxUnacked = 5000
)

// smState is a session's stream management once the client enabled it
// (XEP-0198): what the server sent and the client has not acknowledged,
// counted modulo 2^32 as the XEP counts. It is guarded by the session's wmu.
type smState struct {
	id      string        // the resumption id; "" when not resumable
	max     time.Duration // how long the session waits to be resumed
	out     uint32        // stanzas sent since enabling
	acked   uint32        // the client's last h
	unacked [][]byte      // the stanzas after acked, in order
	bytes   int           // their size
	// asked is set while a request for an ack (<r/>) is unanswered.
	asked bool
}

// sent counts a stanza and keeps it until the client acknowledges it; an
// error when the client lets too many wait (XEP-0198 §4 leaves the limit to
// the server).
func (sm *smState) sent(s *Session, b []byte) *StreamError {
	if set := s.srv.cur(); len(sm.unacked) >= set.SMMaxUnacked || sm.bytes+len(b) > 4*set.QueueBytes {
		return &StreamError{Condition: ResourceConstraint, Text: "too many stanzas not acknowledged (XEP-0198)"}
	}
	sm.out++
	sm.unacked = append(sm.unacked, b)
	sm.bytes += len(b)
	return nil
}

// requestAck returns an <r/> to send after a stanza, unless one is
// unanswered already: the server asks for acknowledgements so that what it
// keeps stays small.
func (sm *smState) requestAck() []byte {
	if sm.asked {
		return nil
	}
	sm.asked = true
	return smR
}

// ack takes the client's h: what it acknowledges is dropped. An h beyond
// what was sent is a client error (XEP-0198 §4: <undefined-condition/> with
// <handled-count-too-high/>).
func (sm *smState) ack(h uint32) *StreamError {
	n := h - sm.acked // modulo 2^32: wraps around as the counters do
	if int64(n) > int64(len(sm.unacked)) {
		return &StreamError{Condition: UndefinedCondition, Text: "h=" + strconv.FormatUint(uint64(h), 10) +
			" acknowledges more stanzas than were sent (" + strconv.FormatUint(uint64(sm.out), 10) + "); handled-count-too-high"}
	}
	for _, b := range sm.unacked[:n] {
		sm.bytes -= len(b)
	}
	clear(sm.unacked[:n])
	sm.unacked = sm.unacked[n:]
	if len(sm.unacked) == 0 {
		sm.unacked = nil // let the array go
	}
	sm.acked = h
	sm.asked = false
	return nil
}

var (
	smR = []byte(`<r xmlns="` + NSSM + `"/>`)
)

// registerSM offers stream management on client streams: the feature, the
// resumption negotiated instead of binding, and the elements of a bound
// session. BOSH streams, which have acknowledgements of their own, are not
// offered it.
func (s *Server) registerSM() {
	s.AddStreamFeature(s.smFeature())
	s.HandleElement(NSSM, "enable", s.smEnable)
	s.HandleElement(NSSM, "r", func(_ context.Context, sess *Session, _ *Element) error {
		b := appendAttrs([]byte(`<a xmlns="`+NSSM+`"`), "h", strconv.FormatUint(uint64(sess.smIn.Load()), 10))
		sess.sendNonza(append(b, "/>"...))
		return nil
	})
	s.HandleElement(NSSM, "a", func(_ context.Context, sess *Session, el *Element) error {
		h, err := strconv.ParseUint(el.Get("h"), 10, 32)
		if err != nil {
			return StreamError{Condition: StreamInvalidXML, Text: "<a/> needs an h between 0 and 2^32-1"}
		}
		sess.wmu.Lock()
		sm := sess.sm
		var se *StreamError
		if sm != nil {
			se = sm.ack(uint32(h))
		}
		sess.wmu.Unlock()
		if se != nil {
			return *se
		}
		return nil
	})
	s.HandleClusterOp(opSMTakeOver, s.smTakenOver)
	s.HandleElement(NSSM, "resume", func(context.Context, *Session, *Element) error {
		return StreamError{Condition: PolicyViolation, Text: "<resume/> comes instead of resource binding, not after it"}
	})
}

// smFeature announces <sm/> after authentication, and takes <resume/>
// (and an early <enable/>) in place of binding.
func (s *Server) smFeature() mxmpp.StreamFeature {
	return mxmpp.StreamFeature{
		Name:       xml.Name{Space: NSSM, Local: "sm"},
		Necessary:  mxmpp.Authn,
		Prohibited: mxmpp.Ready,
		List: func(ctx context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			return false, listEmpty(w, start)
		},
		Parse: func(_ context.Context, d *xml.Decoder, _ *xml.StartElement) (bool, interface{}, error) {
			return false, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, ms *mxmpp.Session, _ interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
			el, err := negotiationElement(ms)
			if err != nil {
				return 0, nil, err
			}
			g, _ := ms.Conn().(*guard)
			if g == nil || g.owner == nil {
				return 0, nil, StreamError{Condition: UndefinedCondition}
			}
			return g.owner.resume(el)
		},
	}
}

// smEnable turns stream management on for a bound session (XEP-0198 §3).
func (s *Server) smEnable(_ context.Context, sess *Session, el *Element) error {
	c := sess.c()
	if c.noSM {
		sess.sendNonza(smFailed("unexpected-request", 0, false))
		return nil
	}
	resume := el.Get("resume") == "true" || el.Get("resume") == "1"
	sess.wmu.Lock()
	if sess.sm != nil {
		sess.wmu.Unlock()
		sess.sendNonza(smFailed("unexpected-request", 0, false))
		return nil
	}
	resumeTimeout := s.cur().SMResumeTimeout
	sm := &smState{max: resumeTimeout}
	if m, err := strconv.Atoi(el.Get("max")); err == nil && m > 0 && time.Duration(m)*time.Second < sm.max {
		sm.max = time.Duration(m) * time.Second
	}
	b := []byte(`<enabled xmlns="` + NSSM + `"`)
	if resume && resumeTimeout > 0 {
		sm.id = s.newSMID()
		b = appendAttrs(b, "id", sm.id, "resume", "true", "max", strconv.Itoa(int(sm.max/time.Second)))
	}
	b = append(b, "/>"...)
	// <enabled/> is queued before sm is set, under one lock: every stanza
	// queued after it is counted, none before.
	sess.queue = append(sess.queue, b)
	sess.queued += len(b)
	sess.sm = sm
	sess.startWriter()
	sess.wmu.Unlock()
	sess.smCounting.Store(true)
	if sm.id != "" {
		s.smMu.Lock()
		s.smSessions[sm.id] = sess
		s.smMu.Unlock()
	}
	return nil
}

// newSMID makes a resumption id. On a cluster it ends with a dot and this
// node's name (base64url), so that the node a client resumes on after a
// reconnection knows which node to ask for the session (smTakeOver).
func (s *Server) newSMID() string {
	id := randomID() + randomID()
	if s.Bus != nil {
		id += "." + base64.RawURLEncoding.EncodeToString([]byte(s.node))
	}
	return id
}

// smNode returns the node named in a resumption id newSMID made on a
// cluster; false for any other id.
func smNode(id string) (string, bool) {
	_, enc, ok := strings.Cut(id, ".")
	if !ok || enc == "" {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(b) == 0 {
		return "", false
	}
	return string(b), true
}

// opSMTakeOver asks the node holding a resumable session (previd) of an
// account (jid) to end it, because its client tries to resume it on the
// asking node, having received h stanzas. The answer's 'h' is what the
// session handled from the client, absent when the node knows no such
// session.
const opSMTakeOver = "sm-takeover"

// smTakeOver asks node to end the session id of the account me, whose
// client now tries to resume it here having received acked stanzas (its
// h: those are not handed on, so that it gets none twice), and returns
// the session's count of handled stanzas; false when node does not know
// it, did not answer in time, or is gone (then at once: no hanging).
//
// Why the session is not moved here: a session is more than its stream
// management counters and queue. Modules keep state per session (its
// roster and presence state, directed presence, carbons, client state,
// room occupancy on that node), which would all have to move too. Ending
// it there and handing on what was not acknowledged, as a timed-out
// hibernation does, loses nothing, and the client binds again at once.
func (s *Server) smTakeOver(node, id, me string, acked uint32) (uint32, bool) {
	op := NewElement(NSCluster, opSMTakeOver, "previd", id, "jid", me, "h", strconv.FormatUint(uint64(acked), 10))
	a := s.askNode(s.ctx, node, op)
	if a == nil {
		return 0, false
	}
	h, err := strconv.ParseUint(a.Get("h"), 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(h), true
}

// smTakenOver answers opSMTakeOver: the session named, if it is here and
// the account's, ends at once (its unacknowledged stanzas handed on, see
// redeliver), and the answer carries its count; an ended one's count is
// remembered a while (smGone).
func (s *Server) smTakenOver(ctx context.Context, op *Element) {
	id, bare := op.Get("previd"), op.Get("jid")
	s.smMu.Lock()
	sess := s.smSessions[id]
	gone, wasGone := s.smGone[id]
	s.smMu.Unlock()
	a := NewElement(NSCluster, opAnswer)
	switch {
	case sess != nil && sess.bare == bare:
		if h, err := strconv.ParseUint(op.Get("h"), 10, 32); err == nil {
			// What the client has is not handed on (redeliver). An h
			// beyond what was sent acknowledges nothing.
			sess.wmu.Lock()
			if sess.sm != nil {
				sess.sm.ack(uint32(h))
			}
			sess.wmu.Unlock()
		}
		// Ending takes a moment (hooks, the handing on): not on the bus's
		// goroutine.
		s.Go(func(ctx context.Context) {
			sess.Close(&StreamError{Condition: Conflict, Text: "the session was resumed on another node"})
			sess.awaitEnd(clusterWait / 2)
			sess.logger().Info("session ended: its client resumed on another node", "node", op.Get("reply-to"))
			a.Set("h", strconv.FormatUint(uint64(sess.smIn.Load()), 10))
			s.answerNode(ctx, op, a)
		})
		return
	case wasGone && gone.bare == bare:
		a.Set("h", strconv.FormatUint(uint64(gone.h), 10))
	}
	s.answerNode(ctx, op, a)
}

func smFailed(cond string, h uint32, withH bool) []byte {
	b := []byte(`<failed xmlns="` + NSSM + `"`)
	if withH {
		b = appendAttrs(b, "h", strconv.FormatUint(uint64(h), 10))
	}
	b = append(b, `><`...)
	b = append(b, cond...)
	b = append(b, ` xmlns="`+NSStanzas+`"/></failed>`...)
	return b
}

// smGone is what is left of a resumable session that ended: enough to tell a
// late resumption how many stanzas the server handled (XEP-0198 §5, <failed
// h='...'/>).
type smGone struct {
	bare  string
	h     uint32
	until time.Time
}

// maxSMGone bounds the ended sessions remembered.
const maxSMGone = 10000

// resume handles the element a client sent in place of binding: <resume/>
// takes over the session it names, on this connection; anything else
// (<enable/> before binding) fails, and the client may go on and bind.
func (c *conn) resume(el *Element) (mxmpp.SessionState, io.ReadWriter, error) {
	s := c.srv
	fail := func(cond string, h uint32, withH bool) (mxmpp.SessionState, io.ReadWriter, error) {
		_, err := c.guard.Write(smFailed(cond, h, withH))
		return 0, nil, err
	}
	if el.Local != "resume" || c.noSM {
		return fail("unexpected-request", 0, false)
	}
	h64, err := strconv.ParseUint(el.Get("h"), 10, 32)
	if err != nil {
		return fail("bad-request", 0, false)
	}
	id := el.Get("previd")
	me := c.auth.user.String()
	s.smMu.Lock()
	sess := s.smSessions[id]
	gone, wasGone := s.smGone[id]
	s.smMu.Unlock()
	if sess == nil || sess.bare != me {
		if wasGone && gone.bare == me {
			return fail("item-not-found", gone.h, true)
		}
		if node, ok := smNode(id); ok && sess == nil && node != s.node && s.Bus != nil {
			// Another node's session: it ends there, what its client had
			// not acknowledged goes to the account, and its count comes back
			// here for <failed h=.../>.
			h, ok := s.smTakeOver(node, id, me, uint32(h64))
			return fail("item-not-found", h, ok)
		}
		return fail("item-not-found", 0, false)
	}
	c.bound = sess.jid
	resent, se := sess.resumeOn(c, uint32(h64))
	if se != nil {
		if se.Condition == "" {
			return fail("item-not-found", sess.smIn.Load(), true)
		}
		return 0, nil, *se
	}
	c.sess = sess
	c.resumed = true
	c.logger().Info("stream resumed", "jid", sess.full, "resent", resent)
	// Ready ends negotiation; the stream itself goes on unchanged. The
	// ReadWriter is only there because mellium stops looking for further
	// features after an optional one (<sm/> is optional: a client that
	// fails to resume binds) only when one is returned.
	return mxmpp.Ready, c.guard, nil
}

// resumeOn moves the session to connection c, whose client acknowledged h:
// <resumed/> and every stanza after h go out on c first (XEP-0198 §5). A
// session whose old connection still looks alive is taken from it. The
// error has no condition when the session cannot be resumed any more.
func (sess *Session) resumeOn(c *conn, h uint32) (int, *StreamError) {
	sess.wmu.Lock()
	defer sess.wmu.Unlock()
	sm := sess.sm
	if sess.closed || sm == nil {
		return 0, &StreamError{}
	}
	if sess.hibernation != nil && !sess.hibernation.Stop() {
		return 0, &StreamError{} // it is ending right now
	}
	sess.setHibernation(nil)
	if se := sm.ack(h); se != nil {
		return 0, se
	}
	old := sess.c()
	sess.cur.Store(c)
	if sess.live {
		old.raw.Close() // its reader returns and leaves the session to c
	}
	b := appendAttrs([]byte(`<resumed xmlns="`+NSSM+`"`), "h", strconv.FormatUint(uint64(sess.smIn.Load()), 10), "previd", sm.id)
	b = append(b, "/>"...)
	// What was queued for the old connection is all in unacked, if it was
	// a stanza; the rest (acks, requests) is moot.
	clear(sess.queue)
	sess.queue = append(sess.queue[:0], b)
	sess.queued = len(b)
	for _, st := range sm.unacked {
		sess.queue = append(sess.queue, st)
		sess.queued += len(st)
	}
	resent := len(sm.unacked)
	sm.asked = false
	if resent > 0 {
		sess.queue = append(sess.queue, sm.requestAck())
	}
	sess.live = true
	if !sess.writing {
		sess.writing = true
		go sess.writeQueue()
	}
	return resent, nil
}

// hibernate keeps a resumable session whose connection c broke (err says
// how) for its client to resume; false when it cannot be kept: stream
// management is off or not resumable, the stream ended cleanly or with a
// stream error, or the session is closing.
func (sess *Session) hibernate(c *conn, err error) bool {
	if err == nil {
		return false // the client closed its stream: it is done
	}
	if _, tell := streamErrorFor(err); tell {
		return false // a protocol error, not a lost connection
	}
	sess.wmu.Lock()
	sm := sess.sm
	if sess.closed || sm == nil || sm.id == "" || sess.c() != c || sess.srv.ctx.Err() != nil {
		sess.wmu.Unlock()
		return false
	}
	sess.live = false
	clear(sess.queue)
	sess.queue, sess.queued = sess.queue[:0], 0
	sess.setHibernation(time.AfterFunc(sm.max, sess.expire))
	sess.wmu.Unlock()
	c.raw.Close()
	sess.logger().Info("session hibernated", "err", err, "resume_within", sm.max)
	sess.srv.hooks.runSession(sess.srv.ctx, SessionHibernated, sess)
	return true
}

// resumable reports whether the client enabled stream management with
// resumption.
func (sess *Session) resumable() bool {
	sess.wmu.Lock()
	defer sess.wmu.Unlock()
	return sess.sm != nil && sess.sm.id != ""
}

// expire ends a session nobody resumed in time.
func (sess *Session) expire() {
	sess.wmu.Lock()
	if sess.hibernation == nil {
		sess.wmu.Unlock()
		return // resumed or closed meanwhile
	}
	sess.setHibernation(nil)
	sess.wmu.Unlock()
	sess.srv.wg.Add(1)
	sess.end(nil)
}

// forgetResumable removes an ending session from the resumable ones, and
// remembers its count for a late resumption.
func (s *Server) forgetResumable(sess *Session) {
	sess.wmu.Lock()
	sm := sess.sm
	sess.wmu.Unlock()
	if sm == nil || sm.id == "" {
		return
	}
	s.smMu.Lock()
	defer s.smMu.Unlock()
	delete(s.smSessions, sm.id)
	now := time.Now()
	if len(s.smGone) >= maxSMGone {
		for id, g := range s.smGone {
			if now.After(g.until) || len(s.smGone) >= maxSMGone {
				delete(s.smGone, id)
			}
		}
	}
	s.smGone[sm.id] = smGone{bare: sess.bare, h: sess.smIn.Load(), until: now.Add(2 * sm.max)}
}

// redeliver hands what the client of an ended session never acknowledged to
// others, so that nothing is lost (XEP-0198 §5): messages go to the
// account as if sent anew (another resource, or offline storage), an IQ
// request's sender gets an error, the rest is dropped. The session is no
// longer routable, so nothing comes back to it.
func (sess *Session) redeliver() {
	sess.wmu.Lock()
	var unacked [][]byte
	if sess.sm != nil {
		unacked, sess.sm.unacked = sess.sm.unacked, nil
	}
	sess.wmu.Unlock()
	if len(unacked) == 0 {
		return
	}
	ctx := context.WithoutCancel(sess.srv.ctx)
	r := sess.srv.router
	n := 0
	for _, b := range unacked {
		st, err := parseStanza(b, NSClient)
		if err != nil {
			continue
		}
		switch st.Local {
		case "message":
			switch st.Get("type") {
			case "error", "groupchat", "headline":
				continue // a room's or a notice: nothing to keep
			}
			if f := st.Get("from"); f == sess.bare || f == "" {
				continue // a carbon copy or the server's: the account has it
			}
			r.Route(ctx, st, nil)
			n++
		case "iq":
			if t := st.Get("type"); t == "get" || t == "set" {
				reply := ErrorReply(st, StanzaError{Condition: ServiceUnavailable, Text: "the recipient's session ended before it answered"})
				r.Route(ctx, reply, nil)
			}
		}
	}
	sess.logger().Info("unacknowledged stanzas handed on", "messages", n, "stanzas", len(unacked))
}

// smTables are the server's resumable sessions and the ended ones'
// counts; guarded by smMu.
type smTables struct {
	smMu       sync.Mutex
	smSessions map[string]*Session
	smGone     map[string]smGone
	// hibernating counts the sessions waiting for a resumption.
	hibernating atomic.Int64
}

// Hibernating is how many sessions wait for their client to resume them
// (XEP-0198): a hook that matters only for those (push notifications) can
// return at once while there are none.
func (s *Server) Hibernating() int64 { return s.hibernating.Load() }

// setHibernation sets or clears the session's wait for a resumption, and
// keeps the server's count; called with wmu held.
func (s *Session) setHibernation(t *time.Timer) {
	switch {
	case s.hibernation == nil && t != nil:
		s.srv.hibernating.Add(1)
	case s.hibernation != nil && t == nil:
		s.srv.hibernating.Add(-1)
	}
	s.hibernation = t
}
