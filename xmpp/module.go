package xmpp

import (
	"context"
	"errors"
	"sort"
	"sync"

	"mellium.im/xmpp/jid"
)

// A Module adds a feature to the server. Register is called once, before the
// server accepts connections; it declares IQ handlers, disco features and
// hooks, and may start goroutines that end with s.Context().
type Module interface {
	Register(s *Server)
}

// Target says whom an IQ is addressed to: the server itself, or an account
// (a bare JID, answered by the server on the account's behalf).
type Target int

// IQ targets.
const (
	ToServer Target = iota
	ToAccount
)

// An IQ is a request handed to an IQHandler.
type IQ struct {
	*Element
	// Payload is the request's one child element.
	Payload *Element
	// From is the sender; To the addressee (the server's domain, or the
	// account's bare JID).
	From, To jid.JID
	// Session is the sender's session when it is local, else nil.
	Session *Session
}

// An IQHandler answers an IQ get or set: with the payload of the result (nil
// for an empty result), or with an error (a StanzaError is sent as it is;
// any other error as internal-server-error).
type IQHandler func(ctx context.Context, iq *IQ) (*Element, error)

type handlerKey struct {
	target       Target
	typ          string
	space, local string
}

// HandleIQ registers h for IQs of type typ ("get" or "set") whose payload is
// the element space/local, addressed to target.
func (s *Server) HandleIQ(target Target, typ, space, local string, h IQHandler) {
	s.setup()
	s.handlers[handlerKey{target, typ, space, local}] = h
}

// AddFeature adds a service discovery feature for target.
func (s *Server) AddFeature(target Target, feature string) {
	s.setup()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.features[target] = append(s.features[target], feature)
}

// AddStreamFeature announces an empty element space/local among the stream
// features after authentication; it must be called from Register.
func (s *Server) AddStreamFeature(space, local string) {
	s.streamFeatures = append(s.streamFeatures, informational(space, local))
}

// Features returns the sorted service discovery features of target.
func (s *Server) Features(target Target) []string {
	s.setup()
	s.mu.Lock()
	defer s.mu.Unlock()
	f := append([]string(nil), s.features[target]...)
	sort.Strings(f)
	return f
}

// OnSessionStarted registers fn to run when a session is bound and routed.
func (s *Server) OnSessionStarted(fn func(*Session)) {
	s.hooks.add(&s.hooks.started, fn)
}

// OnSessionEnded registers fn to run when a session has ended.
func (s *Server) OnSessionEnded(fn func(*Session)) {
	s.hooks.add(&s.hooks.ended, fn)
}

// A PresenceHandler takes over presence beyond delivery: rosters,
// subscriptions, broadcasts and probes (RFC 6121 §3, §4). Without one the
// router delivers presence addressed to an account to its available
// resources and drops the rest.
type PresenceHandler interface {
	// OutboundPresence handles presence a local client sent, 'from'
	// already stamped: broadcast presence when it has no 'to', directed
	// presence or a subscription stanza otherwise. s.Available() already
	// reflects a broadcast presence; wasAvailable is the state before it,
	// so that initial presence and the end of availability can be told.
	OutboundPresence(ctx context.Context, s *Session, st *Element, wasAvailable bool)
	// InboundPresence handles presence addressed to a local account, bare
	// or full JID, from anyone; origin is the sending session when it is
	// local, else nil.
	InboundPresence(ctx context.Context, st *Element, to jid.JID, origin *Session)
}

// SetPresenceHandler installs the presence handler (one at most).
func (s *Server) SetPresenceHandler(h PresenceHandler) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.presenceHandler = h
}

// OnAvailable registers fn to run when a session sends its initial presence
// (RFC 6121 §4.2), after the presence handler has broadcast it.
func (s *Server) OnAvailable(fn func(context.Context, *Session)) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.availableFns = append(s.hooks.availableFns, fn)
}

// OnUndeliverable registers fn for messages to an existing account that has
// no available resource with a non-negative priority (RFC 6121 §8.5.2.2).
// fn returns true when it took the message (offline storage); an error is
// returned to the sender, as it is when it is a StanzaError.
func (s *Server) OnUndeliverable(fn func(context.Context, *Element) (bool, error)) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.undeliverableFns = append(s.hooks.undeliverableFns, fn)
}

type hooks struct {
	mu               sync.RWMutex
	started, ended   []func(*Session)
	presenceHandler  PresenceHandler
	availableFns     []func(context.Context, *Session)
	undeliverableFns []func(context.Context, *Element) (bool, error)
	shutdownFns      []func()
}

// OnShutdown runs fn when Shutdown begins, after the listeners close and
// before the sessions are: what fn sends to sessions is still written (the
// multi-user chat service says goodbye to occupants with status 332).
func (s *Server) OnShutdown(fn func()) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.shutdownFns = append(s.hooks.shutdownFns, fn)
}

func (h *hooks) shutdown() {
	h.mu.RLock()
	fns := h.shutdownFns
	h.mu.RUnlock()
	for _, fn := range fns {
		fn()
	}
}

func (h *hooks) add(list *[]func(*Session), fn func(*Session)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*list = append(*list, fn)
}

func (h *hooks) run(list []func(*Session), s *Session) {
	for _, fn := range list {
		fn(s)
	}
}

func (h *hooks) sessionStarted(s *Session) {
	h.mu.RLock()
	l := h.started
	h.mu.RUnlock()
	h.run(l, s)
}

func (h *hooks) sessionEnded(s *Session) {
	h.mu.RLock()
	l := h.ended
	h.mu.RUnlock()
	h.run(l, s)
}

func (h *hooks) presence() PresenceHandler {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.presenceHandler
}

func (h *hooks) available(ctx context.Context, s *Session) {
	h.mu.RLock()
	l := h.availableFns
	h.mu.RUnlock()
	for _, fn := range l {
		fn(ctx, s)
	}
}

func (h *hooks) undeliverable(ctx context.Context, st *Element) (bool, error) {
	h.mu.RLock()
	l := h.undeliverableFns
	h.mu.RUnlock()
	for _, fn := range l {
		if ok, err := fn(ctx, st); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// handleIQ answers an IQ addressed to target; false when no handler exists
// (a get or set is then answered with service-unavailable only when target
// is ToServer, the last resort).
func (s *Server) handleIQ(ctx context.Context, st *Element, origin *Session, target Target) bool {
	typ := st.Get("type")
	switch typ {
	case "result", "error":
		// Answers to the server's own requests; any other is dropped.
		if origin != nil {
			origin.response(st)
		}
		return true
	case "get", "set":
	default:
		s.router.bounce(st, origin, StanzaError{Condition: BadRequest})
		return true
	}
	kids := st.Elements()
	if len(kids) != 1 {
		s.router.bounce(st, origin, StanzaError{Condition: BadRequest, Text: "an IQ get or set has exactly one child"})
		return true
	}
	payload := kids[0]
	h := s.handlers[handlerKey{target, typ, payload.Space, payload.Local}]
	if h == nil {
		if target == ToServer {
			s.router.bounce(st, origin, StanzaError{Condition: ServiceUnavailable})
			return true
		}
		if st.Get("to") != "" {
			// An IQ to another account that nothing answers (RFC 6121 §8.5.2.1.3).
			s.router.bounce(st, origin, StanzaError{Condition: ServiceUnavailable})
			return true
		}
		return false
	}
	iq := &IQ{Element: st, Payload: payload, Session: origin}
	iq.From, _ = jid.Parse(st.Get("from"))
	switch t := st.Get("to"); {
	case target == ToServer:
		iq.To = s.domainJID
	case t != "":
		iq.To, _ = jid.Parse(t)
	case origin != nil:
		iq.To = origin.jid.Bare()
	}
	res, err := h(ctx, iq)
	if err != nil {
		var se StanzaError
		if !errors.As(err, &se) {
			s.log.Warn("IQ handler failed", "ns", payload.Space, "err", err)
			se = StanzaError{Condition: InternalError}
		}
		s.router.bounce(st, origin, se)
		return true
	}
	reply := ResultReply(st, res)
	if st.Get("to") == "" {
		reply.Set("from", s.replyFrom(origin))
	}
	s.router.deliverReply(reply, origin)
	return true
}

// registerCore registers what RFC 6120 and RFC 6121 themselves need.
func (s *Server) registerCore() {
	// RFC 3921 session establishment, kept as a no-op (RFC 6121 Appendix E).
	ok := func(context.Context, *IQ) (*Element, error) { return nil, nil }
	s.handlers[handlerKey{ToAccount, "set", NSSession, "session"}] = ok
	s.handlers[handlerKey{ToServer, "set", NSSession, "session"}] = ok
}
