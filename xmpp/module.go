package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"sort"

	mxmpp "mellium.im/xmpp"
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
// the element space/local, addressed to target. Each may have one handler:
// a second registration is a programming error and panics, rather than
// silently replace the first.
func (s *Server) HandleIQ(target Target, typ, space, local string, h IQHandler) {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	k := handlerKey{target, typ, space, local}
	if s.handlers[k] != nil {
		panic("xmpp: a second handler for IQ " + typ + " {" + space + "}" + local)
	}
	s.handlers[k] = h
}

// iqHandler returns the handler for k; handlers are only added while the
// modules register, before any IQ is read.
func (s *Server) iqHandler(k handlerKey) IQHandler {
	s.regMu.RLock()
	defer s.regMu.RUnlock()
	return s.handlers[k]
}

// AddFeature adds a service discovery feature for target.
func (s *Server) AddFeature(target Target, feature string) {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.features[target] = append(s.features[target], feature)
}

// Features returns the sorted service discovery features of target.
func (s *Server) Features(target Target) []string {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	f := append([]string(nil), s.features[target]...)
	sort.Strings(f)
	return f
}

// An Identity is a service discovery identity (XEP-0030 §3.1).
type Identity struct {
	Category, Type, Name string
}

// AddIdentity adds a service discovery identity for target: the server's
// (server/im) or every account's (account/registered, pubsub/pep).
func (s *Server) AddIdentity(target Target, id Identity) {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.identities[target] = append(s.identities[target], id)
}

// Identities returns target's identities in the order they were added.
func (s *Server) Identities(target Target) []Identity {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	return append([]Identity(nil), s.identities[target]...)
}

// AddInfoForm adds an extended information form (XEP-0128) to target's
// service discovery information: a data form of type result whose
// FORM_TYPE names it (the server's contact addresses of XEP-0157). The
// element is shared by every answer and must not change afterwards.
func (s *Server) AddInfoForm(target Target, form *Element) {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.infoForms[target] = append(s.infoForms[target], form)
}

// InfoForms returns target's extended information forms in the order they
// were added.
func (s *Server) InfoForms(target Target) []*Element {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	return append([]*Element(nil), s.infoForms[target]...)
}

// A DiscoItem is a service discovery item (XEP-0030 §4).
type DiscoItem struct {
	JID, Node, Name string
}

// ItemsSource lists items of an entity: the server (owner is the domain)
// or an account (owner is its bare JID); requester asks.
type ItemsSource func(ctx context.Context, owner, requester jid.JID) []DiscoItem

// AddItems adds a source of service discovery items for target.
func (s *Server) AddItems(target Target, src ItemsSource) {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.items[target] = append(s.items[target], src)
}

// Items returns the items every source lists for owner.
func (s *Server) Items(ctx context.Context, target Target, owner, requester jid.JID) []DiscoItem {
	s.setup()
	s.regMu.Lock()
	srcs := append([]ItemsSource(nil), s.items[target]...)
	s.regMu.Unlock()
	var out []DiscoItem
	for _, src := range srcs {
		out = append(out, src(ctx, owner, requester)...)
	}
	return out
}

// A DiscoNode is what service discovery says of one node of an entity
// (XEP-0030 §3.2, §4.2): a personal eventing node of an account.
type DiscoNode struct {
	Identities []Identity
	Features   []string
	Items      []DiscoItem
}

// A NodeSource describes the node of an entity (the server, or an account
// whose bare JID is owner) to requester; false when it has no such node,
// or none that requester may see.
type NodeSource func(ctx context.Context, owner, requester jid.JID, node string) (DiscoNode, bool)

// AddNodeSource adds a source of service discovery nodes for target.
func (s *Server) AddNodeSource(target Target, src NodeSource) {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.nodes[target] = append(s.nodes[target], src)
}

// DiscoNodeOf returns what the first source that has it says of owner's node.
func (s *Server) DiscoNodeOf(ctx context.Context, target Target, owner, requester jid.JID, node string) (DiscoNode, bool) {
	s.setup()
	s.regMu.Lock()
	srcs := append([]NodeSource(nil), s.nodes[target]...)
	s.regMu.Unlock()
	for _, src := range srcs {
		if n, ok := src(ctx, owner, requester, node); ok {
			return n, true
		}
	}
	return DiscoNode{}, false
}

// An ElementHandler handles a top-level element other than a stanza that a
// bound session sent, such as stream management's <r/> or client state
// indication's <active/>. An error ends the stream (a StreamError is sent
// as it is).
type ElementHandler func(ctx context.Context, s *Session, el *Element) error

// HandleElement registers h for top-level elements space/local from bound
// sessions; it must be called from Register. Elements nobody handles end
// the stream with <unsupported-stanza-type/>.
func (s *Server) HandleElement(space, local string, h ElementHandler) {
	s.setup()
	s.regMu.Lock()
	defer s.regMu.Unlock()
	k := xml.Name{Space: space, Local: local}
	if s.elements[k] != nil {
		panic("xmpp: a second handler for element {" + space + "}" + local)
	}
	s.elements[k] = h
}

func (s *Server) elementHandler(space, local string) ElementHandler {
	s.regMu.RLock()
	defer s.regMu.RUnlock()
	return s.elements[xml.Name{Space: space, Local: local}]
}

// AddStreamFeature offers f in the stream features of client streams (RFC
// 6120 §4.3), where its Necessary and Prohibited states allow: after
// authentication and before binding for a feature negotiated instead of
// binding (stream management's <resume/>). Use Informational for one
// that is only announced. It must be called from Register.
func (s *Server) AddStreamFeature(f mxmpp.StreamFeature) {
	s.streamFeatures = append(s.streamFeatures, f)
}

// Informational is a stream feature announced after authentication as an
// empty element space/local, and never negotiated: roster versioning (RFC
// 6121 §2.6.1), or stream management, whose <enable/> comes after binding
// and goes to an ElementHandler.
func Informational(space, local string) mxmpp.StreamFeature {
	return informational(space, local)
}

// handleIQ answers an IQ addressed to target; false when no handler exists
// (a get or set is then answered with service-unavailable only when target
// is ToServer, the last resort).
func (s *Server) handleIQ(ctx context.Context, st *Element, origin *Session, target Target) bool {
	typ := st.Get("type")
	switch typ {
	case "result", "error":
		// Answers to the server's own requests; any other is dropped.
		if s.router.answer(st) {
			return true
		}
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
	h := s.iqHandler(handlerKey{target, typ, payload.Space, payload.Local})
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
	s.registerSM()
	s.HandleClusterOp(opAnswer, s.takeAnswer)
	s.HandleClusterOp(opReplace, s.replaced)
}
