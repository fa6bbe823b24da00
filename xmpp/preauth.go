package xmpp

import (
	"context"
	"encoding/xml"
	"io"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
)

// A PreAuthIQ answers IQs that a client sends on a secure stream before it
// authenticates: XEP-0077 §3.1's account creation. The core offers it
// among the stream features and hands it the IQs whose payload is in
// Space, with the client's address, so that it can limit per address.
type PreAuthIQ struct {
	// Space is the namespace of the payloads it answers.
	Space string
	// Feature is the empty element the stream features announce while
	// Announce returns true (or is nil). When it returns false the
	// feature is not announced, but an IQ is still answered, so that it
	// can be refused with a stanza error rather than end the stream.
	Feature  xml.Name
	Announce func() bool
	// Handle answers one IQ from the client at addr with a reply (a result
	// or ErrorReply). done says that the client is expected to sign in
	// next (it registered); otherwise it may send another such IQ.
	Handle func(ctx context.Context, addr string, iq *Element) (reply *Element, done bool)
}

// maxPreAuthIQs bounds the IQs one stream sends before authenticating.
const maxPreAuthIQs = 8

// HandlePreAuthIQ installs h; one at most. It must be called from
// Register.
func (s *Server) HandlePreAuthIQ(h PreAuthIQ) {
	if s.preAuth != nil {
		panic("xmpp: a second PreAuthIQ")
	}
	s.preAuth = &h
}

// errPreAuthOrder is why a stream ends when, after IQs of a pre-auth
// feature, something else comes: mellium negotiates a feature once, and
// what came was read already.
var errPreAuthOrder = StreamError{Condition: PolicyViolation,
	Text: "after in-band registration IQs, only another one may follow; sign in on a new stream"}

// preAuthFeature negotiates h's IQs. Mellium hands a feature the first
// IQ whose payload has the feature's namespace; the ones after it (the
// form, then the submission) are read here, until h is done or something
// else comes.
func (c *conn) preAuthFeature(h *PreAuthIQ) mxmpp.StreamFeature {
	return mxmpp.StreamFeature{
		Name:       xml.Name{Space: h.Space, Local: "query"},
		Necessary:  mxmpp.Secure,
		Prohibited: mxmpp.Authn,
		List: func(_ context.Context, w xmlstream.TokenWriter, _ xml.StartElement) (bool, error) {
			if h.Announce != nil && !h.Announce() {
				return false, nil
			}
			start := xml.StartElement{Name: h.Feature}
			if err := w.EncodeToken(start); err != nil {
				return false, err
			}
			return false, w.EncodeToken(start.End())
		},
		Negotiate: func(ctx context.Context, ms *mxmpp.Session, _ interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
			err := c.preAuthIQs(ctx, ms, h)
			if err != nil {
				// Mellium goes on reading after an optional feature
				// fails: the error goes out now, and its next read ends
				// negotiation.
				if se, ok := c.negotiationError(err, ms); ok {
					c.fail(se)
				}
				c.raw.SetReadDeadline(time.Now())
			}
			return 0, nil, err
		},
	}
}

// preAuthIQs answers h's IQs until h is done, or fails.
func (c *conn) preAuthIQs(ctx context.Context, ms *mxmpp.Session, h *PreAuthIQ) error {
	for i := 0; i < maxPreAuthIQs; i++ {
		el, err := negotiationElement(ms)
		if err != nil {
			return err
		}
		kids := el.Elements()
		if el.Local != "iq" || len(kids) != 1 || kids[0].Space != h.Space {
			return errPreAuthOrder
		}
		reply, done := h.Handle(ctx, c.addr, el)
		if reply != nil {
			if _, err := c.guard.Write(reply.Bytes(NSClient)); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
	return StreamError{Condition: PolicyViolation, Text: "too many in-band registration IQs"}
}
