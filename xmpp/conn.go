package xmpp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// conn is one client connection while its stream is negotiated.
type conn struct {
	srv   *Server
	raw   net.Conn
	guard *guard // the current layer the decoder reads: raw or TLS
	addr  string
	auth  *authenticator
	// bound is the full JID after resource binding, and sess its session.
	bound  jid.JID
	sess   *Session
	remote string
	mode   connMode
	// deadline is when negotiation must be over.
	deadline time.Time
	// noSM is set for transports that have acknowledgements of their own
	// (BOSH): stream management is not offered. resumed is set when the
	// stream resumed an existing session (XEP-0198) instead of binding.
	noSM, resumed bool
}

// connMode says how a client connection is carried.
type connMode uint8

const (
	plainTCP     connMode = iota // STARTTLS offered (and required)
	directTLS                    // TLS from the first byte (XEP-0368)
	webSecure                    // a web transport over HTTPS or a trusted network
	webInsecure                  // a web transport over plain HTTP from elsewhere
	s2sPlain                     // a server-to-server stream (STARTTLS)
	s2sDirectTLS                 // a server-to-server stream with TLS at once
)

// logger is the server's, with the client's address.
func (c *conn) logger() *slog.Logger { return c.srv.log.With("remote", c.remote) }

var errHostUnknown = errors.New("xmpp: host unknown")

// errHostChanged is a restarted stream addressed to another domain than the
// first one; mellium refuses it with an untyped error, recognised by its text
// (TestEarlyStreamErrorsWellFormed fails if that text changes).
var errHostChanged = errors.New("xmpp: stream location")

// handleConn negotiates a client stream on a connection that was admitted:
// it holds one of addr's unauthenticated slots, released here once the
// stream is bound (or ends).
func (s *Server) handleConn(raw net.Conn, mode connMode, addr string) {
	defer s.caught("negotiation", raw.RemoteAddr().String(), nil)
	if mode == s2sPlain || mode == s2sDirectTLS {
		s.handleS2S(raw, mode == s2sDirectTLS, addr)
		return
	}
	// Once negotiated, the session runs on a goroutine of its own, which
	// then owns the connection: negotiation (TLS, SASL) grows a stack that
	// an idle session should not keep.
	handedOver := false
	defer func() {
		if !handedOver {
			raw.Close()
		}
	}()
	// Deferred after the close so that it runs before it: a client that
	// sees its refused stream closed may connect again at once and must
	// find the slot free (TestEarlyStreamErrorsWellFormed failed now and
	// then on a loaded machine).
	defer s.admission.release(addr)
	c := &conn{srv: s, raw: raw, addr: addr, remote: raw.RemoteAddr().String(), mode: mode}
	var layer net.Conn = raw
	// One version of the settings for the connection's set-up.
	set := s.cur()
	deadline := time.Now().Add(set.NegotiationTimeout)
	c.deadline = deadline
	if mode == directTLS {
		tc := tls.Server(raw, s.TLSConfig)
		raw.SetDeadline(s.handshakeDeadline(deadline))
		if err := tc.Handshake(); err != nil {
			c.logger().Debug("TLS handshake failed", "err", err)
			return
		}
		releaseHandshakeBuffers(tc)
		raw.SetDeadline(time.Time{})
		layer = tc
	}
	c.guard = newGuard(layer, set.MaxStanzaSize, newRateLimiter(set.ReadRate, set.ReadBurst))
	c.guard.owner = c
	if t, ok := raw.(interface{ StreamManagement() bool }); ok && !t.StreamManagement() {
		c.noSM = true
	}

	if s.failures.blocked(addr, set.MaxAuthFailures, set.AuthFailureWindow) {
		c.fail(StreamError{Condition: PolicyViolation, Text: "too many failed authentication attempts; try again later"})
		return
	}

	c.auth = &authenticator{
		domain:  s.Domain,
		lookup:  s.Store.Credentials,
		unknown: s.unknownCredentials,
		locked:  func(bare string) bool { return s.accountLocked(bare, addr) },
		tokens:  s.Tokens,
		metrics: s.Metrics,
		fail: func() {
			set := s.cur()
			n := s.failures.record(addr, set.AuthFailureWindow)
			if acct := c.auth.attempted; acct != "" && set.MaxAccountAuthFailures >= 0 {
				if m := s.accountFailures.record(acct, set.AuthFailureWindow); m == set.MaxAccountAuthFailures {
					c.logger().Warn("account locked for new addresses after failed authentications", "jid", acct, "failures", m, "window", set.AuthFailureWindow)
				}
			}
			c.logger().Info("authentication failed", "failures", n, "reason", c.auth.reason)
			time.Sleep(s.authDelay(n))
		},
	}
	// The negotiation deadline is a read deadline of our own, and shutdown
	// cuts reads short the same way. mellium gets a context that never ends,
	// because when one does it clears the connection's deadlines.
	raw.SetReadDeadline(deadline)
	stop := context.AfterFunc(s.negCtx, func() { raw.SetReadDeadline(time.Now()) })
	ctx := context.WithoutCancel(s.ctx)
	var state mxmpp.SessionState
	if mode == directTLS || mode == webSecure {
		state = mxmpp.Secure
	}
	ms, err := mxmpp.ReceiveSession(ctx, c.guard, state, mxmpp.NewNegotiator(c.streamConfig))
	stop()
	if err != nil && strings.Contains(err.Error(), "does not match previously set location") {
		err = errHostChanged
	}
	if err != nil && c.sess != nil && !c.resumed {
		s.router.unregister(c.sess)
	}
	if err != nil {
		if s.negCtx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			if s.negCtx.Err() != nil {
				c.fail(StreamError{Condition: SystemShutdown})
			} else {
				c.fail(StreamError{Condition: ConnectionTimeout, Text: "stream negotiation took too long"})
			}
			return
		}
		if se, ok := c.negotiationError(err, ms); ok {
			c.fail(se)
		}
		return
	}
	raw.SetReadDeadline(time.Time{})
	handedOver = true
	if s.negCtx.Err() != nil {
		// Bound while Shutdown collected the sessions to close: this one
		// may not be among them.
		c.sess.Close(&StreamError{Condition: SystemShutdown})
	}
	s.wg.Add(1)
	go c.sess.serve(c, c.resumed)
}

// handshakeDeadline is when a TLS handshake must be done: within the
// handshake timeout, and within the negotiation's deadline.
func (s *Server) handshakeDeadline(negotiation time.Time) time.Time {
	d := time.Now().Add(s.cur().TLSHandshakeTimeout)
	if negotiation.Before(d) {
		return negotiation
	}
	return d
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// streamConfig is called by mellium at the start of every stream (and once
// with nil to prime it): it offers the features that fit the stream's state.
func (c *conn) streamConfig(ms *mxmpp.Session, _ *mxmpp.StreamConfig) mxmpp.StreamConfig {
	if ms == nil {
		return mxmpp.StreamConfig{Lang: "en"}
	}
	if to := ms.In().To; to.Domainpart() != c.srv.Domain || to.Localpart() != "" || to.Resourcepart() != "" {
		// Our stream header is out and the features are next: the error
		// goes now and closes the stream, so that nothing of the features
		// list follows it (RFC 6120 §4.9.1.3). refuseHost then only ends
		// negotiation.
		c.fail(StreamError{Condition: HostUnknown, Text: "this server does not serve that domain"})
		return mxmpp.StreamConfig{Features: []mxmpp.StreamFeature{refuseHost}}
	}
	st := ms.State()
	var features []mxmpp.StreamFeature
	secure := st&mxmpp.Secure != 0
	if !secure && c.mode == plainTCP {
		features = append(features, c.startTLS())
	}
	if st&mxmpp.Authn == 0 {
		if cs := ms.ConnectionState(); cs.Version != 0 {
			c.auth.tls = &cs
		}
		mechs := c.auth.mechanisms(secure)
		if !secure && c.mode == webInsecure && !c.srv.AllowPlaintextAuth {
			features = append(features, c.refuseSASL(mechs))
		} else {
			features = append(features, c.sasl(mechs))
			if c.auth.plusOffered {
				features = append(features, channelBindings)
			}
		}
		if c.srv.preAuth != nil {
			features = append(features, c.preAuthFeature(c.srv.preAuth))
		}
	}
	features = append(features, c.bindFeature(), legacySession)
	for _, f := range c.srv.streamFeatures {
		if c.noSM && f.Name.Space == NSSM {
			continue
		}
		features = append(features, f)
	}
	return mxmpp.StreamConfig{Lang: "en", Features: features}
}

// saslAttempts is how many authentication attempts one stream gets (RFC
// 6120 §6.4.5 asks for a configurable number between 2 and 5).
const saslAttempts = 5

// sasl is mellium's SASL feature, run again after a failure so that a client
// can retry (another password, or another mechanism) on the same stream,
// until the attempts or the address's failure budget run out.
func (c *conn) sasl(mechs []sasl.Mechanism) mxmpp.StreamFeature {
	f := mxmpp.SASLServer(func(*sasl.Negotiator) bool { return true }, mechs...)
	if c.srv.AllowPlaintextAuth {
		f.Necessary = 0
	}
	negotiate := f.Negotiate
	f.Negotiate = func(ctx context.Context, ms *mxmpp.Session, data interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
		for attempt := 1; ; attempt++ {
			mask, rw, err := negotiate(ctx, ms, data)
			if r, ok := errors.AsType[saslRefusal](err); ok {
				c.logger().Debug("authentication attempt refused", "mechanism", c.auth.mech, "attempt", attempt, "reason", r.reason)
				if werr := writeSASLFailure(ms, SASLNotAuthorized, r.reason); werr != nil {
					return mask, rw, werr
				}
			} else if r, ok := errors.AsType[saslTemporary](err); ok {
				// Logged at warn: a client cannot sign in because of us.
				// The reason may name the database; the client hears only
				// that it is a passing fault.
				c.logger().Warn("authentication could not be decided", "mechanism", c.auth.mech, "attempt", attempt, "reason", r.reason)
				if werr := writeSASLFailure(ms, SASLTemporaryAuthFailure, "the server cannot check credentials now; try again later"); werr != nil {
					return mask, rw, werr
				}
			} else if errors.Is(err, errAuth) {
				c.logger().Debug("authentication attempt failed", "attempt", attempt, "reason", c.auth.reason)
			}
			if !errors.Is(err, errAuth) || attempt == saslAttempts {
				return mask, rw, err
			}
			if set := c.srv.cur(); c.srv.failures.blocked(c.addr, set.MaxAuthFailures, set.AuthFailureWindow) {
				return 0, nil, errBlocked
			}
		}
	}
	return f
}

// writeSASLFailure answers a refused attempt with the SASL condition
// (<not-authorized/>, §6.5.10, or <temporary-auth-failure/>, §6.5.9) and
// why (RFC 6120 §6.4.5).
func writeSASLFailure(ms *mxmpp.Session, condition SASLCondition, why string) error {
	w := ms.TokenWriter()
	defer w.Close()
	text := xmlstream.Wrap(xmlstream.Token(xml.CharData(why)), xml.StartElement{
		Name: xml.Name{Local: "text"},
		Attr: []xml.Attr{{Name: xml.Name{Space: "xml", Local: "lang"}, Value: "en"}},
	})
	failure := xmlstream.Wrap(xmlstream.MultiReader(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: string(condition)}}),
		text,
	), xml.StartElement{Name: xml.Name{Space: NSSASL, Local: "failure"}})
	if _, err := xmlstream.Copy(w, failure); err != nil {
		return err
	}
	return w.Flush()
}

var errBlocked = errors.New("xmpp: too many failed authentication attempts from this address")

// errInsecureWeb is why a web transport over plain HTTP from a network that
// is not trusted cannot authenticate: there is no STARTTLS on it.
var errInsecureWeb = errors.New("signing in over plain HTTP is only allowed from trusted networks (such as a TLS-terminating proxy on this host); use HTTPS (https:// or wss://)")

// refuseSASL lists the mechanisms on a web stream that is not secure and
// answers any attempt with <encryption-required/> (RFC 6120 §6.5.5), saying
// why, then closes the stream: it cannot be upgraded with STARTTLS.
func (c *conn) refuseSASL(mechs []sasl.Mechanism) mxmpp.StreamFeature {
	return mxmpp.StreamFeature{
		Name:       xml.Name{Space: NSSASL, Local: "mechanisms"},
		Prohibited: mxmpp.Authn,
		List: func(_ context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			toks := []xml.Token{start}
			for _, m := range mechs {
				el := xml.StartElement{Name: xml.Name{Local: "mechanism"}}
				toks = append(toks, el, xml.CharData(m.Name), el.End())
			}
			toks = append(toks, start.End())
			for _, t := range toks {
				if err := w.EncodeToken(t); err != nil {
					return false, err
				}
			}
			return true, nil
		},
		Parse: func(_ context.Context, d *xml.Decoder, _ *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(_ context.Context, ms *mxmpp.Session, _ interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
			if _, err := negotiationElement(ms); err != nil {
				return 0, nil, err
			}
			b := []byte(`<failure xmlns="` + NSSASL + `"><encryption-required/><text xml:lang="en">`)
			b = appendEscaped(b, errInsecureWeb.Error())
			b = append(b, "</text></failure>"...)
			if _, err := c.guard.Write(b); err != nil {
				return 0, nil, err
			}
			return 0, nil, errInsecureWeb
		},
	}
}

// negotiationElement reads the element a client sent to negotiate a
// feature of ours, in full.
func negotiationElement(ms *mxmpp.Session) (*Element, error) {
	r := ms.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, StreamError{Condition: StreamInvalidXML}
	}
	return ReadElement(d, start)
}

// refuseHost makes negotiation fail before any feature is offered, once the
// stream has been closed with <host-unknown/>.
var refuseHost = mxmpp.StreamFeature{
	Name: xml.Name{Space: "urn:xmppd:host-unknown", Local: "refuse"},
	List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
		return true, errHostUnknown
	},
}

// informational is a stream feature that is only announced, after
// authentication, such as roster versioning (RFC 6121 §2.6.1).
func informational(space, local string) mxmpp.StreamFeature {
	return mxmpp.StreamFeature{
		Name:       xml.Name{Space: space, Local: local},
		Necessary:  mxmpp.Authn,
		Prohibited: mxmpp.Ready,
		List: func(_ context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			return false, listEmpty(w, start)
		},
	}
}

// listEmpty announces a feature as an empty element.
func listEmpty(w xmlstream.TokenWriter, start xml.StartElement) error {
	if err := w.EncodeToken(start); err != nil {
		return err
	}
	return w.EncodeToken(start.End())
}

// NSChannelBinding is XEP-0440's namespace: the channel binding types the
// server supports, so that a client picks one it will accept.
const NSChannelBinding = "urn:xmpp:sasl-cb:0"

// channelBindings lists tls-exporter (RFC 9266), the one type offered,
// beside -PLUS mechanisms (TLS 1.3 only: tls-unique does not exist there,
// RFC 8446 §C.5). Clients that read it stop asking for tls-unique, which
// is refused. It is only a list: nothing is negotiated through it.
var channelBindings = mxmpp.StreamFeature{
	Name:       xml.Name{Space: NSChannelBinding, Local: "sasl-channel-binding"},
	Necessary:  mxmpp.Secure,
	Prohibited: mxmpp.Authn,
	List: func(ctx context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
		cb := xml.StartElement{Name: xml.Name{Local: "channel-binding"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "tls-exporter"}}}
		for _, tok := range []xml.Token{start, cb, cb.End(), start.End()} {
			if err := w.EncodeToken(tok); err != nil {
				return false, err
			}
		}
		return false, nil
	},
	Parse: func(_ context.Context, d *xml.Decoder, _ *xml.StartElement) (bool, interface{}, error) {
		return false, nil, d.Skip()
	},
	Negotiate: func(context.Context, *mxmpp.Session, interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
		return 0, nil, StreamError{Condition: PolicyViolation, Text: "sasl-channel-binding is a list, not something to negotiate"}
	},
}

// legacySession advertises RFC 3921's session establishment as optional
// (RFC 6121 Appendix E); the IQ itself is answered once the stream is ready.
var legacySession = mxmpp.StreamFeature{
	Name:       xml.Name{Space: NSSession, Local: "session"},
	Necessary:  mxmpp.Authn,
	Prohibited: mxmpp.Ready,
	List: func(_ context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
		opt := xml.StartElement{Name: xml.Name{Local: "optional"}}
		for _, t := range []xml.Token{start, opt, opt.End(), start.End()} {
			if err := w.EncodeToken(t); err != nil {
				return false, err
			}
		}
		return false, nil
	},
}

// startTLS is mellium's STARTTLS feature with the TLS layer placed under a
// fresh guard, so that the limits keep applying to the decrypted stream.
func (c *conn) startTLS() mxmpp.StreamFeature {
	f := mxmpp.StartTLS(c.srv.TLSConfig)
	if c.srv.AllowPlaintextAuth {
		// TLS is offered, not required (RFC 6120 §5.3.1).
		f.List = func(_ context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			return false, listEmpty(w, start)
		}
	}
	f.Negotiate = func(ctx context.Context, ms *mxmpp.Session, _ interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
		if _, err := c.guard.Write([]byte(`<proceed xmlns="` + NSTLS + `"/>`)); err != nil {
			return 0, nil, err
		}
		tc := tls.Server(c.raw, c.srv.TLSConfig)
		hctx, cancel := context.WithDeadline(ctx, c.srv.handshakeDeadline(c.deadline))
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			// The connection is neither plain XML nor TLS now: it is
			// closed without a stream error (RFC 6120 §5.4.3.2).
			c.guard.closeWrite()
			return 0, nil, err
		}
		releaseHandshakeBuffers(tc)
		c.guard = newGuard(tc, c.guard.lex.limit, c.guard.rate)
		c.guard.owner = c
		return mxmpp.Secure, c.guard, nil
	}
	return f
}

// errBindRefused ends a stream whose bind request was refused (the client
// has its IQ error): mellium's negotiation takes no second request.
var errBindRefused = errors.New("xmpp: resource binding refused")

// bindFeature is resource binding (RFC 6120 §7). mellium's own feature
// answers a refusal with a result IQ carrying the error inside <bind/>,
// which clients do not read as an error; this one answers with a proper
// error IQ (§7.6.2).
func (c *conn) bindFeature() mxmpp.StreamFeature {
	return mxmpp.StreamFeature{
		Name:       xml.Name{Space: NSBind, Local: "bind"},
		Necessary:  mxmpp.Authn,
		Prohibited: mxmpp.Ready,
		List: func(_ context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			return true, listEmpty(w, start)
		},
		Parse: func(_ context.Context, d *xml.Decoder, _ *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(_ context.Context, ms *mxmpp.Session, _ interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
			iq, err := negotiationElement(ms)
			if err != nil {
				return 0, nil, err
			}
			req := iq.Child(NSBind, "bind")
			if iq.Local != "iq" || iq.Get("type") != "set" || req == nil {
				return 0, nil, StreamError{Condition: PolicyViolation, Text: "expected a bind request"}
			}
			resource := ""
			if res := req.Child(NSBind, "resource"); res != nil {
				resource = res.Text()
			}
			j, err := c.bind(resource)
			var reply *Element
			if err != nil {
				var se StanzaError
				errors.As(err, &se)
				reply = ErrorReply(iq, se)
			} else {
				res := NewElement(NSBind, "bind")
				res.Add(NewElement(NSBind, "jid").Add(Text(j.String())))
				reply = ResultReply(iq, res)
			}
			if _, werr := c.guard.Write(reply.Bytes(NSClient)); werr != nil {
				return 0, nil, werr
			}
			if err != nil {
				return 0, nil, errBindRefused
			}
			return mxmpp.Ready, nil, nil
		},
	}
}

// bind assigns the full JID (RFC 6120 §7): the resource the client asked
// for, or one we make up.
func (c *conn) bind(resource string) (jid.JID, error) {
	if c.auth.user.Equal(jid.JID{}) {
		return jid.JID{}, StanzaError{Condition: NotAuthorizedCond}
	}
	if resource == "" {
		resource = randomID()
	}
	j, err := c.auth.user.WithResource(resource)
	if err != nil {
		return jid.JID{}, StanzaError{Condition: BadRequest, Text: "the resource is not valid (RFC 7622)"}
	}
	c.srv.knownAddrs.add(c.auth.user.String(), c.addr)
	// Route to the session from now on: a contact may write the moment the
	// client learns its JID. Stanzas wait in its queue until it is served.
	c.bound = j
	sess := newSession(c.srv, c)
	if !sess.register() {
		c.logger().Info("bind refused: too many sessions", "jid", j.Bare().String(), "max", c.srv.cur().MaxSessionsPerAccount)
		return jid.JID{}, StanzaError{Condition: ResourceConstraintC, Text: "this account has as many sessions as it may have"}
	}
	c.sess = sess
	return j, nil
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// negotiationError maps what went wrong during negotiation to the stream
// error the client is told; false means the connection is gone and there is
// nobody to tell.
func (c *conn) negotiationError(err error, ms *mxmpp.Session) (StreamError, bool) {
	if errors.Is(err, errHostUnknown) || errors.Is(err, errHostChanged) {
		return StreamError{Condition: HostUnknown, Text: "this server does not serve that domain"}, true
	}
	if verr := c.guard.violationAhead(); verr != nil {
		// The guard sees the violation in bytes the decoder had not yet
		// reached when mellium gave up on an earlier element.
		return streamErrorFor(verr)
	}
	if errors.Is(err, errInsecureWeb) {
		return StreamError{Condition: PolicyViolation, Text: errInsecureWeb.Error()}, true
	}
	if errors.Is(err, errBindRefused) {
		return StreamError{Condition: PolicyViolation, Text: "no resource was bound"}, true
	}
	if errors.Is(err, errBlocked) {
		return StreamError{Condition: PolicyViolation, Text: "too many failed authentication attempts; try again later"}, true
	}
	if errors.Is(err, errAuth) {
		return StreamError{Condition: NotAuthorized, Text: "authentication failed"}, true
	}
	var me stream.Error
	if errors.As(err, &me) && me.Err == stream.PolicyViolation.Err {
		// mellium says "policy-violation" for any element that is not a
		// feature on offer; a stanza before authentication has its own
		// condition (RFC 6120 §4.9.3.12).
		if ms == nil || ms.State()&mxmpp.Authn == 0 {
			switch c.guard.lex.topName() {
			case "message", "presence", "iq":
				return StreamError{Condition: NotAuthorized, Text: "authenticate first"}, true
			}
		}
	}
	return streamErrorFor(err)
}

// streamErrorFor maps a read or protocol error to a stream error.
func streamErrorFor(err error) (StreamError, bool) {
	var se StreamError
	var me stream.Error
	var syn *xml.SyntaxError
	switch {
	case errors.As(err, &se):
		return se, true
	case errors.Is(err, errRestricted):
		return StreamError{Condition: RestrictedXML, Text: err.Error()}, true
	case errors.Is(err, errTooBig):
		return StreamError{Condition: PolicyViolation, Text: "stanza too large"}, true
	case errors.Is(err, errDepth):
		return StreamError{Condition: PolicyViolation, Text: "elements nested too deeply"}, true
	case errors.As(err, &syn):
		return StreamError{Condition: NotWellFormed, Text: syn.Msg}, true
	case errors.Is(err, os.ErrDeadlineExceeded):
		return StreamError{Condition: ConnectionTimeout}, true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return StreamError{}, false
	case errors.As(err, &me):
		return StreamError{Condition: StreamCondition(me.Err)}, true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return StreamError{}, false
	}
	return StreamError{Condition: UndefinedCondition}, true
}

// fail sends a stream error and closes the stream during negotiation, when
// nothing else writes to the connection. If we have not sent our stream
// header yet, it goes first (RFC 6120 §4.9.1.2). Only the first call writes;
// nothing is written after it.
func (c *conn) fail(se StreamError) {
	b := make([]byte, 0, 256)
	if c.guard.needHeader() {
		b = appendStreamHeader(b, c.srv.Domain, randomID())
	}
	b = se.Append(b)
	b = append(b, "</stream:stream>"...)
	c.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if c.guard.finalWrite(b) {
		c.logger().Info("stream error", "condition", se.Condition, "text", se.Text)
	}
}

func appendStreamHeader(b []byte, domain, id string) []byte {
	b = append(b, `<?xml version="1.0"?><stream:stream xmlns="`+NSClient+`" xmlns:stream="`+NSStream+`" version="1.0" from="`...)
	b = appendEscaped(b, domain)
	b = append(b, `" id="`...)
	b = append(b, id...)
	return append(b, `">`...)
}
