package xmpp

import (
	"context"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

// A Bus carries stanzas between the nodes of a cluster that share one
// session registry (docs/ARCHITECTURE.md, "How a stanza travels"): a
// stanza for a session on another node is handed to that node, which
// delivers it with Server.Receive.
type Bus interface {
	// Publish hands the serialised stanza to the node named node; false
	// when no node of that name takes it (it is gone), so that the router
	// goes on as for a session that is not there. (storage.Bus, which
	// storage/redis implements, is one.)
	Publish(ctx context.Context, node string, stanza []byte) (bool, error)
	// PublishMany hands several, in order, in one round trip; received
	// says which were taken.
	PublishMany(ctx context.Context, msgs []storage.BusMessage) (received []bool, err error)
}

// NSCluster is the namespace of the operations one node asks of another
// over the bus, besides delivering a stanza (SendClusterOp).
const NSCluster = "urn:xmppd:cluster:0"

type fromBusKey struct{}

// fromBus reports whether ctx is the delivery of a stanza another node
// sent: it must not go back over the bus, whatever happens to it here.
func fromBus(ctx context.Context) bool { return ctx.Value(fromBusKey{}) != nil }

// FromBus reports whether ctx is the handling of a stanza or an operation
// that another node sent over the bus: a component or module must not
// send it on over the bus again (no loops between nodes).
func FromBus(ctx context.Context) bool { return fromBus(ctx) }

// Clustered reports whether this node shares its domain with other nodes
// (it has a bus).
func (s *Server) Clustered() bool { return s.Bus != nil }

// HandleClusterOp registers fn for the operations named name (elements in
// NSCluster) that other nodes send with SendClusterOp. Register handlers
// while modules register, before the server starts; fn runs in the bus's
// delivery goroutine, one operation after another, so it must not wait
// long (start a goroutine with Server.Go for slow work).
func (s *Server) HandleClusterOp(name string, fn func(ctx context.Context, op *Element)) {
	if s.clusterOps == nil {
		s.clusterOps = make(map[string]func(context.Context, *Element))
	}
	s.clusterOps[name] = fn
}

// SendClusterOp hands op, an element in NSCluster, to the node named
// node; false when no node of that name took it (or there is no bus).
func (s *Server) SendClusterOp(ctx context.Context, node string, op *Element) bool {
	if s.Bus == nil {
		return false
	}
	ok, err := s.Bus.Publish(ctx, node, op.Bytes(NSClient))
	if err != nil {
		s.log.Warn("cluster bus", "node", node, "op", op.Local, "err", err)
		return false
	}
	return ok
}

// A NodeFanout is a stanza for sessions of one other node: f for those
// bound to the full JIDs To on Node.
type NodeFanout struct {
	Node string
	F    Fanout
	To   []string
}

// SendFanouts hands each fanout to its node, in order, in one round trip
// over the bus, each in one message however many sessions it is for: a
// chat room's copies for its occupants on other nodes. taken says which
// nodes took theirs.
func (s *Server) SendFanouts(ctx context.Context, fs []NodeFanout) (taken []bool) {
	if s.Bus == nil || len(fs) == 0 {
		return make([]bool, len(fs))
	}
	msgs := make([]storage.BusMessage, len(fs))
	for i, nf := range fs {
		msgs[i] = storage.BusMessage{Node: nf.Node, Payload: fanoutPayload(nf)}
	}
	taken, err := s.Bus.PublishMany(ctx, msgs)
	if err != nil {
		s.log.Warn("cluster bus", "op", "fanout", "err", err)
	}
	if len(taken) < len(fs) {
		taken = append(taken, make([]bool, len(fs)-len(taken))...)
	}
	return taken
}

// fanoutPayload is the operation carrying nf: its addressees, then the
// stanza as the fanout serialised it once (only its namespace is spelled
// out, as it sits in another's), not serialised again per node.
func fanoutPayload(nf NodeFanout) []byte {
	if nf.F.el.Space != NSClient {
		op := NewElement(NSCluster, "fanout")
		for _, to := range nf.To {
			op.Add(NewElement(NSCluster, "to").Add(Text(to)))
		}
		return op.Add(nf.F.el).Bytes(NSClient)
	}
	b := make([]byte, 0, 64+len(nf.F.head)+len(nf.F.tail)+32*len(nf.To))
	b = append(b, `<fanout xmlns="`+NSCluster+`">`...)
	for _, to := range nf.To {
		b = append(b, "<to>"...)
		b = appendEscaped(b, to)
		b = append(b, "</to>"...)
	}
	b = append(b, nf.F.head...)
	b = append(b, ` xmlns="`+NSClient+`"`...)
	b = append(b, nf.F.tail...)
	return append(b, "</fanout>"...)
}

// receiveFanout delivers what SendFanout sent to the sessions here; one
// that has gone meanwhile gets nothing, as a fanout to a local session
// that has gone.
func (s *Server) receiveFanout(ctx context.Context, op *Element) {
	var tmpl *Element
	var tos []string
	for _, n := range op.Children {
		el, ok := n.(*Element)
		switch {
		case !ok:
		case el.Space == NSCluster && el.Local == "to":
			tos = append(tos, el.Text())
		case el.Space == NSClient:
			tmpl = el
		}
	}
	if tmpl == nil {
		return
	}
	f := NewFanout(tmpl)
	for _, to := range tos {
		if j, err := jid.Parse(to); err == nil {
			s.router.DeliverFanout(ctx, j, nil, f)
		}
	}
}

// SessionHere returns the session bound to full on this node, or nil.
func (s *Server) SessionHere(full jid.JID) *Session { return s.router.session(full) }

// SendToNode hands a stanza to the node named node, which delivers it as
// it would one of its own sessions' (Receive): a stanza for a component
// that the other node hosts the addressee of (a chat room). False when no
// node of that name took it, or st came over the bus itself.
func (s *Server) SendToNode(ctx context.Context, node string, st *Element) bool {
	if s.Bus == nil || fromBus(ctx) {
		return false
	}
	return s.router.sendTo(ctx, node, st)
}

// Receive delivers a stanza another node sent over the bus. The sending
// node ran the hooks an account's stanza passes (MessageIn, PresenceIn)
// and chose this node for the session or account addressed; here it goes
// to that local session (Deliver hooks included), or, if the session went
// meanwhile, the way the core treats a stanza for a session that is not
// there — never back over the bus.
//
// A node may hear from the others before it serves (they tell every live
// node of some changes): Receive makes sure the modules' handlers are
// registered first.
func (s *Server) Receive(ctx context.Context, stanza []byte) error {
	s.init()
	st, err := ParseStanza(stanza)
	if err != nil {
		return err
	}
	ctx = context.WithValue(ctx, fromBusKey{}, true)
	if st.Space == NSCluster {
		switch st.Local {
		case "ping":
			return nil // the sender only wanted to know that this node listens
		case "fanout":
			s.receiveFanout(ctx, st)
			return nil
		}
		if fn := s.clusterOps[st.Local]; fn != nil {
			fn(ctx, st)
		} else {
			s.log.Warn("cluster bus: an operation this node does not know", "op", st.Local)
		}
		return nil
	}
	to, err := jid.Parse(st.Get("to"))
	if err != nil {
		return nil
	}
	if to.Domainpart() != s.Domain {
		if c := s.component(to.Domainpart()); c != nil {
			c.HandleStanza(ctx, st, to, nil)
		}
		return nil
	}
	if to.Localpart() == "" {
		return nil // not for an account here: nothing to do with it
	}
	if to.Resourcepart() != "" {
		s.router.toFull(ctx, st, nil, to)
		return nil
	}
	s.router.toBare(ctx, st, nil, to)
	return nil
}

// remote is an available resource of an account on another node.
type remote struct {
	node     string
	resource string
	priority int
}

// remotes returns bare's available resources on other nodes, from the
// registry; none without a bus, or for a stanza that came over it.
func (r *Router) remotes(ctx context.Context, bare string) []remote {
	if r.srv.Bus == nil || fromBus(ctx) {
		return nil
	}
	rs, err := r.srv.registry.Resources(ctx, bare)
	if err != nil {
		r.srv.log.Warn("session registry", "jid", bare, "err", err)
		return nil
	}
	var out []remote
	for _, res := range rs {
		if res.Node != r.srv.node && res.Available {
			out = append(out, remote{node: res.Node, resource: res.Resource, priority: res.Priority})
		}
	}
	return out
}

// sendTo hands st to node over the bus; false when the node did not take
// it.
func (r *Router) sendTo(ctx context.Context, node string, st *Element) bool {
	ok, err := r.srv.Bus.Publish(ctx, node, st.Bytes(NSClient))
	if err != nil {
		r.srv.log.Warn("cluster bus", "node", node, "err", err)
		return false
	}
	return ok
}

// toRemoteFull sends a stanza for a full JID with no session here to the
// node that holds it; false when none does (or took it).
func (r *Router) toRemoteFull(ctx context.Context, st *Element, to jid.JID) bool {
	res := to.Resourcepart()
	for _, rm := range r.remotes(ctx, to.Bare().String()) {
		if rm.resource == res {
			return r.sendTo(ctx, rm.node, st)
		}
	}
	return false
}

// remoteTargets picks, among the local sessions' best priority (local,
// -1 for none) and the other nodes' resources, the nodes a message to the
// bare JID goes to as well (RFC 6121 §8.5.2.1.1 over the whole cluster):
// every node with an available resource of non-negative priority for a
// headline (all), else those with the highest priority. keepLocal is
// false when a node elsewhere has a higher priority than any here.
func remoteTargets(remotes []remote, local int, all bool) (nodes []string, keepLocal bool) {
	best := local
	for _, rm := range remotes {
		if rm.priority >= 0 && rm.priority > best {
			best = rm.priority
		}
	}
	seen := map[string]bool{}
	for _, rm := range remotes {
		if rm.priority < 0 || (!all && rm.priority != best) || seen[rm.node] {
			continue
		}
		seen[rm.node] = true
		nodes = append(nodes, rm.node)
	}
	return nodes, all || (local >= 0 && local == best)
}

// ToOtherNodes hands st, addressed to the bare JID bare of an account
// here, to each other node where that account has an available resource:
// a presence broadcast, which each node gives to the sessions it holds.
// Nothing happens without a bus.
func (r *Router) ToOtherNodes(ctx context.Context, bare string, st *Element) {
	if r.srv.Bus == nil {
		return
	}
	nodes, _ := remoteTargets(r.remotes(ctx, bare), -1, true)
	for _, n := range nodes {
		r.sendTo(ctx, n, st)
	}
}

// clusterWait bounds how long a node waits for another's answer: a client
// negotiating its stream waits meanwhile, and a node that is alive answers
// in milliseconds.
const clusterWait = 3 * time.Second

// clusterCalls are the questions this node asked others and waits for
// answers to (askNode); guarded by mu.
type clusterCalls struct {
	mu      sync.Mutex
	next    uint64
	waiting map[string]chan *Element
}

// opAnswer is the operation that carries an answer back (answerNode).
const opAnswer = "answer"

// askNode sends op to node and returns its answer (an <answer/> element),
// or nil when the node did not take the question or did not answer within
// clusterWait. op gets the attributes 'req' and 'reply-to' that the
// answering node needs.
func (s *Server) askNode(ctx context.Context, node string, op *Element) *Element {
	if s.Bus == nil {
		return nil
	}
	calls := &s.calls
	calls.mu.Lock()
	if calls.waiting == nil {
		calls.waiting = make(map[string]chan *Element)
	}
	calls.next++
	req := strconv.FormatUint(calls.next, 36)
	ch := make(chan *Element, 1)
	calls.waiting[req] = ch
	calls.mu.Unlock()
	defer func() {
		calls.mu.Lock()
		delete(calls.waiting, req)
		calls.mu.Unlock()
	}()
	op.Set("req", req)
	op.Set("reply-to", s.node)
	if !s.SendClusterOp(ctx, node, op) {
		return nil
	}
	t := time.NewTimer(clusterWait)
	defer t.Stop()
	select {
	case a := <-ch:
		return a
	case <-t.C:
		s.log.Warn("cluster bus: no answer in time", "node", node, "op", op.Local)
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return nil
}

// AskNode sends op, an operation in NSCluster whose handler on node
// answers it with Answer, and returns the answer; nil when the node did
// not take the question or did not answer within 3 s. op must not carry
// the attributes 'req' and 'reply-to', which AskNode sets.
func (s *Server) AskNode(ctx context.Context, node string, op *Element) *Element {
	return s.askNode(ctx, node, op)
}

// Answer answers the question req that another node asked with AskNode:
// its answer holds children.
func (s *Server) Answer(ctx context.Context, req *Element, children ...Node) {
	s.answerNode(ctx, req, NewElement(NSCluster, opAnswer).Add(children...))
}

// answerNode sends the answer a (an <answer/>, NewAnswer) to the node that
// asked req.
func (s *Server) answerNode(ctx context.Context, req, a *Element) {
	a.Set("req", req.Get("req"))
	if n := req.Get("reply-to"); n != "" {
		s.SendClusterOp(ctx, n, a)
	}
}

// takeAnswer hands an answer to the askNode waiting for it; one that came
// too late finds nobody.
func (s *Server) takeAnswer(_ context.Context, a *Element) {
	s.calls.mu.Lock()
	ch := s.calls.waiting[a.Get("req")]
	s.calls.mu.Unlock()
	if ch != nil {
		select {
		case ch <- a:
		default:
		}
	}
}

// nodeLister is a registry that knows which nodes are alive
// (storage/redis).
type nodeLister interface {
	Nodes(ctx context.Context) ([]string, error)
}

// OtherNodes lists the other live nodes of the cluster, sorted: those a
// module tells of a change that their caches must not miss, or asks about
// their sessions. None without a bus, or with a registry that cannot list
// nodes.
func (s *Server) OtherNodes(ctx context.Context) ([]string, error) {
	nl, ok := s.registry.(nodeLister)
	if s.Bus == nil || !ok {
		return nil, nil
	}
	all, err := nl.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	others := all[:0:0]
	for _, n := range all {
		if n != s.node {
			others = append(others, n)
		}
	}
	return others, nil
}

// SendClusterOpAll hands op to every other live node (OtherNodes); it
// returns those that did not take it. Nothing is sent for an operation
// that came over the bus (no loops between nodes).
func (s *Server) SendClusterOpAll(ctx context.Context, op *Element) (missed []string) {
	if fromBus(ctx) {
		return nil
	}
	nodes, err := s.OtherNodes(ctx)
	if err != nil {
		s.log.Warn("cluster: listing the nodes", "op", op.Local, "err", err)
		return nil
	}
	for _, n := range nodes {
		if !s.SendClusterOp(ctx, n, op) {
			missed = append(missed, n)
		}
	}
	return missed
}

// Queue starts a goroutine of s that runs fn on each item handed to the
// returned function, one after another in the order handed: work that
// another node's operation asks for and that must not hold up the bus's
// delivery goroutine (a storage read, deliveries). The returned function
// never waits: it returns false, dropping the item, when size items wait
// already.
func Queue[T any](s *Server, size int, fn func(ctx context.Context, item T)) func(T) bool {
	ch := make(chan T, size)
	s.Go(func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case it := <-ch:
				fn(ctx, it)
			}
		}
	})
	return func(it T) bool {
		select {
		case ch <- it:
			return true
		default:
			return false
		}
	}
}
