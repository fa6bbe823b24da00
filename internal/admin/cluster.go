package admin

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// Every node of a cluster (docs/cluster.md) holds its own sessions, and the
// API answers on any of them: the node that answers asks the others over
// the cluster bus about theirs (list them, count them, end them, give them
// an app event), and waits a short time for their answers. A node that
// does not answer in time is named in the answer, as unanswered.

// DefaultAskTimeout is Cluster.Timeout when it is zero: the other nodes
// answer from memory, in a round trip through Redis.
const DefaultAskTimeout = 3 * time.Second

// The operations between nodes (xmpp.NSCluster): a question, in JSON,
// <admin-ask id="..." from="node" what="sessions">{...}</admin-ask>, and
// each node's answer, <admin-answer id="..." from="node">{...}</admin-answer>.
const (
	opAsk    = "admin-ask"
	opAnswer = "admin-answer"
)

// Cluster is the admin API's part on every node of a cluster: it answers
// the other nodes' questions about the sessions here, and asks them about
// theirs. It is an xmpp.Module: add it to Server.Modules on every node,
// whether the node serves the API or not (xmppd does). Without a cluster
// bus it asks nobody.
type Cluster struct {
	// Timeout bounds the wait for the other nodes' answers; zero means
	// DefaultAskTimeout.
	Timeout time.Duration

	srv *xmpp.Server
	mu  sync.Mutex
	// waiting are the questions asked from here, by id.
	waiting map[string]chan answer
}

// An answer is one node's answer to a question.
type answer struct {
	node string
	body []byte
}

// Register implements xmpp.Module.
func (c *Cluster) Register(s *xmpp.Server) {
	c.srv = s
	c.waiting = make(map[string]chan answer)
	s.HandleClusterOp(opAsk, c.asked)
	s.HandleClusterOp(opAnswer, c.answered)
}

// cluster returns the API's Cluster: a.Cluster, else the one among the
// server's modules; nil (this node only) when there is none.
func (a *API) cluster() *Cluster {
	if a.Cluster != nil {
		return a.Cluster
	}
	if a.Server != nil {
		for _, m := range a.Server.Modules {
			if c, ok := m.(*Cluster); ok {
				return c
			}
		}
	}
	return nil
}

// ask asks every other live node what (with args, in JSON) and returns
// their answers by node, and the nodes that did not answer in time,
// sorted. Nothing is asked, and nothing answered, without a cluster.
func (c *Cluster) ask(ctx context.Context, what string, args any) (answers map[string][]byte, unanswered []string) {
	if c == nil || c.srv == nil || !c.srv.Clustered() {
		return nil, nil
	}
	nodes, err := c.srv.OtherNodes(ctx)
	if err != nil {
		c.srv.Log().Warn("admin API: listing the nodes", "err", err)
		return nil, nil
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	body, err := json.Marshal(args)
	if err != nil {
		panic(err) // the arguments are this package's own types
	}
	id := rand.Text()
	ch := make(chan answer, len(nodes))
	c.mu.Lock()
	c.waiting[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
	}()
	op := xmpp.NewElement(xmpp.NSCluster, opAsk, "id", id, "from", c.srv.Node(), "what", what).Add(xmpp.Text(body))
	pending := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if c.srv.SendClusterOp(ctx, n, op) {
			pending[n] = true
		} else {
			unanswered = append(unanswered, n)
		}
	}
	timer := time.NewTimer(cmp.Or(c.Timeout, DefaultAskTimeout))
	defer timer.Stop()
	answers = make(map[string][]byte, len(pending))
wait:
	for len(pending) > 0 {
		select {
		case a := <-ch:
			if pending[a.node] {
				delete(pending, a.node)
				answers[a.node] = a.body
			}
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	for n := range pending {
		unanswered = append(unanswered, n)
	}
	slices.Sort(unanswered)
	return answers, unanswered
}

// answered hands another node's answer to the question waiting for it;
// one that comes too late finds nobody.
func (c *Cluster) answered(_ context.Context, op *xmpp.Element) {
	c.mu.Lock()
	ch := c.waiting[op.Get("id")]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- answer{node: op.Get("from"), body: []byte(op.Text())}:
	default: // a node answering twice: the channel holds one per node
	}
}

// asked answers another node's question, out of the bus's goroutine.
func (c *Cluster) asked(_ context.Context, op *xmpp.Element) {
	id, from, what, args := op.Get("id"), op.Get("from"), op.Get("what"), []byte(op.Text())
	if id == "" || from == "" {
		return
	}
	c.srv.Go(func(ctx context.Context) {
		out, err := c.answer(ctx, what, args)
		if err != nil {
			c.srv.Log().Warn("admin API: a question from another node", "node", from, "what", what, "err", err)
			return // the asking node counts this one as unanswered
		}
		body, err := json.Marshal(out)
		if err != nil {
			panic(err) // this package's own types
		}
		reply := xmpp.NewElement(xmpp.NSCluster, opAnswer, "id", id, "from", c.srv.Node()).Add(xmpp.Text(body))
		c.srv.SendClusterOp(ctx, from, reply)
	})
}

// answer does what another node asks of this one, with its arguments.
func (c *Cluster) answer(ctx context.Context, what string, args []byte) (any, error) {
	switch what {
	case askSessions:
		var q sessionsQuery
		if err := json.Unmarshal(args, &q); err != nil {
			return nil, err
		}
		return sessionsHere(c.srv, q.Cursor, q.Limit), nil
	case askKick:
		var q kickQuery
		if err := json.Unmarshal(args, &q); err != nil {
			return nil, err
		}
		return ended{N: kickHere(c.srv, q.JID)}, nil
	case askEnd:
		var q endQuery
		if err := json.Unmarshal(args, &q); err != nil {
			return nil, err
		}
		return ended{N: endHere(c.srv, q.JID, q.Text)}, nil
	case askCount:
		return countHere(c.srv), nil
	case askEvent:
		var q eventQuery
		if err := json.Unmarshal(args, &q); err != nil {
			return nil, err
		}
		return eventHere(ctx, c.srv, q)
	}
	return nil, fmt.Errorf("unknown question %q", what)
}
