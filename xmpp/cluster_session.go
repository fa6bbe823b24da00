package xmpp

import (
	"context"
	"strings"
)

// opReplace asks the node holding a full JID (jid) to end that session:
// the asking node has bound the same resource (RFC 6120 §7.7.2.2). The
// answer comes once the session has ended there.
const opReplace = "replace"

// elsewhere reads the registry for the account bare's sessions on other
// nodes: how many there are besides the resource res, and the node that
// holds res, if one does. Nothing without a bus; when the registry does
// not answer, the other nodes' sessions are not counted (the bind goes on
// as on a single node rather than failing).
func (s *Server) elsewhere(ctx context.Context, bare, res string) (n int, holder string) {
	if s.Bus == nil {
		return 0, ""
	}
	// A client waits for its bind meanwhile.
	ctx, cancel := context.WithTimeout(ctx, clusterWait)
	defer cancel()
	rs, err := s.registry.Resources(ctx, bare)
	if err != nil {
		s.log.Warn("session registry", "jid", bare, "err", err)
		return 0, ""
	}
	for _, r := range rs {
		switch {
		case r.Node == s.node:
		case r.Resource == res:
			holder = r.Node
		default:
			n++
		}
	}
	return n, holder
}

// replaceOn asks node to end its session bound to full, which a session
// here replaces, and waits (clusterWait at most) until it has: that
// session's end, which removes its registry entry and tells its contacts
// it is unavailable, is then over before this session writes its own entry
// and sends its presence. A node that is gone or slow does not hold the
// bind up any longer; its entry goes with it.
func (s *Server) replaceOn(node, full string) {
	if s.askNode(s.ctx, node, NewElement(NSCluster, opReplace, "jid", full)) == nil {
		s.log.Warn("the session a bind replaces on another node did not end in time", "jid", full, "node", node)
	}
}

// replaced answers opReplace: the session bound to the JID ends with
// <conflict/>, as when it is replaced on this node, and the answer goes
// back once it has ended.
func (s *Server) replaced(ctx context.Context, op *Element) {
	a := NewElement(NSCluster, opAnswer)
	full := op.Get("jid")
	var sess *Session
	if bare, _, ok := strings.Cut(full, "/"); ok {
		for _, o := range s.router.sessions(bare) {
			if o.full == full {
				sess = o
			}
		}
	}
	if sess == nil {
		s.answerNode(ctx, op, a)
		return
	}
	s.Go(func(ctx context.Context) {
		sess.Close(&StreamError{Condition: Conflict, Text: "replaced by a new session for the same resource"})
		sess.awaitEnd(clusterWait / 2)
		s.answerNode(ctx, op, a)
	})
}
