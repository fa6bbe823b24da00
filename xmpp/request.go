package xmpp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"

	"mellium.im/xmpp/jid"
)

// requests are the IQs the server sent on behalf of its domain or of an
// account (Router.Request) that wait for their answer, by id.
type requests struct {
	mu      sync.Mutex
	pending map[string]pendingRequest
}

type pendingRequest struct {
	to string // whom the request went to: only they may answer it
	ch chan *Element
}

// ErrNoAnswer is returned by Router.Request when its context ends, or the
// server stops, before the answer comes.
var ErrNoAnswer = errors.New("xmpp: no answer to the request")

// Request routes an IQ get or set that the server sends from one of its own
// addresses (its domain, or a local account's bare JID, as XEP-0357's
// notifications go) to anyone, local or remote, and waits for the answer:
// the result, or the error (an error the router makes, when the addressee
// cannot be reached, counts). iq must have 'from', 'to' and 'type'; its 'id'
// is replaced by one nobody can guess, so that only the addressee can
// answer. It returns ErrNoAnswer wrapped with the context's error when ctx
// ends first.
func (r *Router) Request(ctx context.Context, iq *Element) (*Element, error) {
	var b [12]byte
	rand.Read(b[:])
	id := "q" + hex.EncodeToString(b[:])
	iq = iq.ShallowCopy()
	iq.Set("id", id)
	ch := make(chan *Element, 1)
	rq := &r.requests
	rq.mu.Lock()
	if rq.pending == nil {
		rq.pending = make(map[string]pendingRequest)
	}
	rq.pending[id] = pendingRequest{to: iq.Get("to"), ch: ch}
	rq.mu.Unlock()
	defer func() {
		rq.mu.Lock()
		delete(rq.pending, id)
		rq.mu.Unlock()
	}()
	r.Route(ctx, iq, nil)
	select {
	case a := <-ch:
		return a, nil
	case <-ctx.Done():
		return nil, errors.Join(ErrNoAnswer, ctx.Err())
	case <-r.srv.ctx.Done():
		return nil, ErrNoAnswer
	}
}

// answer hands an IQ result or error to the Request waiting for it; false
// when none waits for its id, or when it comes from someone other than the
// request's addressee.
func (r *Router) answer(iq *Element) bool {
	id := iq.Get("id")
	if id == "" || id[0] != 'q' {
		return false
	}
	rq := &r.requests
	rq.mu.Lock()
	p, ok := rq.pending[id]
	rq.mu.Unlock()
	if !ok || !sameJID(p.to, iq.Get("from")) {
		return false
	}
	select {
	case p.ch <- iq:
	default: // answered already
	}
	return true
}

// sameJID compares two JIDs as XMPP does, after normalisation.
func sameJID(a, b string) bool {
	if a == b {
		return true
	}
	ja, err1 := jid.Parse(a)
	jb, err2 := jid.Parse(b)
	return err1 == nil && err2 == nil && ja.Equal(jb)
}
