package xmpp

import "mellium.im/xmpp/jid"

// Recipients returns the local sessions that the message st to the local
// address to (a bare or a full JID) goes to under RFC 6121 §8.5 as things
// stand: the session bound to a full JID, or, for a bare JID or a full JID
// with no session, what toBare picks (the available resources of highest
// non-negative priority, all of them for a headline). A MessageIn hook
// asks it before the router delivers, to tell which resources get the
// message itself (Message Carbons, XEP-0280 §6, copies it to the others).
func (r *Router) Recipients(to jid.JID, st *Element) []*Session {
	typ := st.Get("type")
	if to.Resourcepart() != "" {
		if s := r.session(to); s != nil {
			return []*Session{s} // §8.5.3.1
		}
		if !toBareWhenGone(typ) {
			return nil
		}
	}
	switch typ {
	case "error", "groupchat":
		return nil // §8.5.2.1.1: dropped or bounced
	}
	return highestPriority(r.sessions(to.Bare().String()), typ == "headline")
}
