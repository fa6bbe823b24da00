package muc

import (
	"context"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Rooms across the nodes of a cluster (docs/cluster.md). Every node runs
// the service, but one node at a time hosts a room: the one holding the
// room's lease in Hosting. A stanza for a room reaches the service on the
// node of whoever sent it; a node that does not host the room hands it to
// the host over the cluster bus (xmpp.Server.SendToNode), and the host
// answers each occupant by address, which the router takes to the node
// of the occupant's session. The host records its occupants beside the
// lease, so that when it dies the next node to get a stanza for the room
// takes the lease, reloads the room from storage (configuration,
// affiliations, subject, and the history from the room's archive) and
// goes on with the same occupants, who notice nothing but the gap.
//
// An occupant whose session ends on another node leaves as on one node:
// its join was directed presence, and the roster sends unavailable
// presence to everyone a session sent directed presence to (RFC 6121
// §4.6.3), which reaches the host like any stanza for the room. An
// occupant whose node dies is taken out when the registry says the node's
// sessions are gone (sessionsGone).

// Hosting shares rooms between nodes: storage/redis.Registry is one.
type Hosting interface {
	// HostRoom returns the node that hosts room, making it this node
	// when no live node does.
	HostRoom(ctx context.Context, room string) (string, error)
	// HostsRoom reports whether this node holds room's lease still.
	HostsRoom(ctx context.Context, room string) (bool, error)
	// ReleaseRoom gives room up if this node hosts it, forgetting its
	// occupants with forgetOccupants.
	ReleaseRoom(ctx context.Context, room string, forgetOccupants bool) error
	// SaveOccupant records the occupant session full of room; DropOccupant
	// removes it; RoomOccupants returns them, full JID → record.
	SaveOccupant(ctx context.Context, room, full string, rec []byte) error
	DropOccupant(ctx context.Context, room, full string) error
	RoomOccupants(ctx context.Context, room string) (map[string][]byte, error)
}

// nsCluster is the namespace of the occupant records the service keeps in
// Hosting.
const nsCluster = "urn:xmppd:muc:cluster:0"

// Waiting for a room's host: a stanza for a room whose host is not
// reachable (it died and its lease has not expired yet) waits for the
// takeover, at most hostWait, and at most maxWaiting of them per room;
// beyond either its sender gets an error.
const (
	hostWait   = 2 * time.Minute
	maxWaiting = 1000
	hostPoll   = 250 * time.Millisecond
)

// clustered reports whether the service shares its rooms with other nodes.
func (s *Service) clustered() bool { return s.Hosting != nil }

// routeToHost hands st, for the room to, to the node hosting it, and
// reports whether it did (or queued it for the host, or refused it); false
// when this node hosts the room and handles st itself.
func (s *Service) routeToHost(ctx context.Context, st *xmpp.Element, to jid.JID) bool {
	bare := to.Bare().String()
	s.mu.Lock()
	_, here := s.rooms[bare]
	waiting := s.waiting[bare] != nil
	s.mu.Unlock()
	if here {
		return false
	}
	if waiting {
		s.wait(bare, st) // behind the others, in order
		return true
	}
	node, err := s.Hosting.HostRoom(ctx, bare)
	if err != nil {
		s.log.Warn("room host", "room", bare, "err", err)
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.InternalError, Text: "the rooms' registry does not answer"})
		return true
	}
	if node == s.srv.Node() {
		return false
	}
	if xmpp.FromBus(ctx) {
		// Another node took this one for the host, and the room moved
		// on meanwhile: no second hop, so that no stanza goes round.
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable, Text: "the room moved to another node; try again"})
		return true
	}
	if !s.srv.SendToNode(ctx, node, st) {
		// Its node is gone and its lease not yet expired.
		s.wait(bare, st)
	}
	return true
}

// wait queues st until the room has a reachable host, starting the
// goroutine that waits for it.
func (s *Service) wait(bare string, st *xmpp.Element) {
	s.mu.Lock()
	q, started := s.waiting[bare]
	if len(q) >= maxWaiting {
		s.mu.Unlock()
		s.reply(s.srv.Context(), st, xmpp.StanzaError{Condition: xmpp.ResourceConstraintC, Text: "the room's node is gone; too many stanzas wait for its takeover"})
		return
	}
	s.waiting[bare] = append(q, st)
	s.mu.Unlock()
	if !started {
		s.srv.Go(func(ctx context.Context) { s.awaitHost(ctx, bare) })
	}
}

// awaitHost polls the room's lease until this node takes it or another
// live node holds it, then hands the waiting stanzas on in order; after
// hostWait their senders get an error.
func (s *Service) awaitHost(ctx context.Context, bare string) {
	deadline := time.Now().Add(hostWait)
	t := time.NewTicker(hostPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		node, err := s.Hosting.HostRoom(ctx, bare)
		if err == nil && (node == s.srv.Node() || s.ping(ctx, node)) {
			s.flushWaiting(ctx, bare)
			return
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			q := s.waiting[bare]
			delete(s.waiting, bare)
			s.mu.Unlock()
			for _, st := range q {
				s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.RemoteServerTimeout, Text: "the room's node is gone and no other took it over"})
			}
			return
		}
	}
}

// ping reports whether node takes what the bus hands it.
func (s *Service) ping(ctx context.Context, node string) bool {
	return s.srv.SendClusterOp(ctx, node, xmpp.NewElement(xmpp.NSCluster, "ping"))
}

// flushWaiting hands the stanzas waiting for bare's host on, in order.
// New ones keep queueing behind until the queue is empty.
func (s *Service) flushWaiting(ctx context.Context, bare string) {
	for {
		s.mu.Lock()
		q := s.waiting[bare]
		if len(q) == 0 {
			delete(s.waiting, bare)
			s.mu.Unlock()
			return
		}
		s.waiting[bare] = q[:0:0]
		s.mu.Unlock()
		for _, st := range q {
			to, err := jid.Parse(st.Get("to"))
			if err != nil {
				continue
			}
			s.handleHere(ctx, st, to, nil)
		}
	}
}

// handleHere handles st as the host would, or hands it to the host; for
// the stanzas that waited.
func (s *Service) handleHere(ctx context.Context, st *xmpp.Element, to jid.JID, origin *xmpp.Session) {
	node, err := s.Hosting.HostRoom(ctx, to.Bare().String())
	if err == nil && node != s.srv.Node() {
		if !s.srv.SendToNode(ctx, node, st) {
			s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.RemoteServerTimeout, Text: "the room's node is gone"})
		}
		return
	}
	s.handleRoom(ctx, st, to, origin)
}

// record keeps the occupant session m of o in Hosting, for the next host.
// r.mu is held.
func (r *room) record(o *occupant, m member) {
	if !r.svc.clustered() {
		return
	}
	rec := xmpp.NewElement(nsCluster, "occupant", "nick", o.nick, "role", o.role)
	if o.presence != nil {
		rec.Add(o.presence)
	}
	b := rec.Bytes(xmpp.NSClient)
	room, full := r.bare, m.full
	r.later(func(ctx context.Context) {
		if err := r.svc.Hosting.SaveOccupant(ctx, room, full, b); err != nil {
			r.svc.log.Warn("recording an occupant", "room", room, "err", err)
		}
	})
}

// recordAll records every session of o (a new nick, role or presence).
// r.mu is held.
func (r *room) recordAll(o *occupant) {
	for _, m := range o.sessions {
		r.record(o, m)
	}
}

// unrecord removes the occupant session full from Hosting. r.mu is held.
func (r *room) unrecord(full string) {
	if !r.svc.clustered() {
		return
	}
	room := r.bare
	r.later(func(ctx context.Context) {
		if err := r.svc.Hosting.DropOccupant(ctx, room, full); err != nil {
			r.svc.log.Warn("forgetting an occupant", "room", room, "err", err)
		}
	})
}

// takeOver gives a room this node has just loaded from storage what its
// previous host left: the occupants it recorded whose sessions live, and
// the last messages of its archive as history. Nobody else knows r yet.
func (s *Service) takeOver(ctx context.Context, r *room) {
	recs, err := s.Hosting.RoomOccupants(ctx, r.bare)
	if err != nil {
		s.log.Warn("reading a room's occupants", "room", r.bare, "err", err)
	}
	alive := make(map[string]map[string]bool) // bare → resources, of local accounts
	gone := make(map[string]*occupant)        // by nick, the occupants whose sessions died
	for full, b := range recs {
		fj, err := jid.Parse(full)
		rec, perr := xmpp.ParseElement(b)
		if err != nil || perr != nil || rec.Space != nsCluster {
			continue
		}
		if fj.Domainpart() == s.srv.Domain {
			// Only sessions the registry still knows: one that ended while
			// the room had no host could not say so.
			bare := fj.Bare().String()
			res, ok := alive[bare]
			if !ok {
				res = map[string]bool{}
				if list, err := s.srv.Registry().Resources(ctx, bare); err == nil {
					for _, x := range list {
						res[x.Resource] = true
					}
				}
				alive[bare] = res
			}
			if !res[fj.Resourcepart()] {
				_ = s.Hosting.DropOccupant(ctx, r.bare, full)
				gone[rec.Get("nick")] = &occupant{nick: rec.Get("nick"), bare: fj.Bare().String(), role: roleNone}
				continue
			}
		}
		nick := rec.Get("nick")
		o := r.byNick[nick]
		if o == nil {
			o = &occupant{nick: nick, bare: fj.Bare().String(), role: rec.Get("role")}
			if p := rec.Child(xmpp.NSClient, "presence"); p != nil {
				o.presence = p
			}
			r.byNick[nick] = o
		}
		m := member{jid: fj, full: full, sess: s.srv.SessionHere(fj)}
		o.sessions = append(o.sessions, m)
		r.byFull[full] = o
		s.track(full, r, true)
	}
	// The others learn that those left (§7.14), as they would have from
	// the host that died.
	r.mu.Lock()
	for nick, o := range gone {
		if r.byNick[nick] != nil {
			continue // another session of it lives
		}
		p := xmpp.NewElement(xmpp.NSClient, "presence", "type", "unavailable", "from", r.occupantJID(nick))
		withJID, withoutJID := p.ShallowCopy(), p.ShallowCopy()
		withJID.Add(r.userX(o, true, "", nil))
		withoutJID.Add(r.userX(o, false, "", nil))
		r.toOccupants(xmpp.NewFanout(withJID), xmpp.NewFanout(withoutJID))
	}
	r.unlock()
	if s.archive == nil || !r.cfg.Archived() || r.cfg.HistoryLength <= 0 {
		return
	}
	page, err := s.Archive.QueryArchive(ctx, r.bare, storage.ArchiveQuery{Max: r.cfg.HistoryLength, Last: true})
	if err != nil {
		s.log.Warn("reading a room's history", "room", r.bare, "err", err)
		return
	}
	for _, msg := range page.Messages {
		el, err := xmpp.ParseStanza(msg.Data)
		if err != nil || el.Child(xmpp.NSClient, "body") == nil {
			continue
		}
		el.Children = append(el.Children, xmpp.NewElement(mam.NSSID, "stanza-id", "by", r.bare, "id", msg.ID))
		r.history = append(r.history, message{el: el, at: msg.Time, size: xmpp.NewFanout(el).Size()})
	}
}

// ended tells the occupants a temporary room's previous host recorded
// that the room is gone with its node (status 332, as when a service
// stops, XEP-0045 §7.14), and forgets them.
func (s *Service) ended(ctx context.Context, bare string) {
	recs, err := s.Hosting.RoomOccupants(ctx, bare)
	if err != nil || len(recs) == 0 {
		return
	}
	for full, b := range recs {
		rec, err := xmpp.ParseElement(b)
		if err != nil {
			continue
		}
		p := xmpp.NewElement(xmpp.NSClient, "presence", "type", "unavailable", "to", full,
			"from", bare+"/"+rec.Get("nick"))
		p.Add(xmpp.NewElement(NSUser, "x").Add(
			xmpp.NewElement(NSUser, "item", "affiliation", storage.AffNone, "role", roleNone),
			xmpp.NewElement(NSUser, "status", "code", "332"),
			xmpp.NewElement(NSUser, "status", "code", "110")))
		s.send(ctx, p)
		_ = s.Hosting.DropOccupant(ctx, bare, full)
	}
}

// lostRooms drops, after this node was taken for dead, the rooms whose
// lease another node took meanwhile: that node has their occupants now.
func (s *Service) lostRooms(ctx context.Context) {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		ok, err := s.Hosting.HostsRoom(ctx, r.bare)
		if err != nil || ok {
			continue
		}
		s.log.Warn("a room moved to another node while this one was cut off", "room", r.bare)
		r.mu.Lock()
		for full := range r.byFull {
			s.track(full, r, false)
		}
		r.byNick, r.byFull = map[string]*occupant{}, map[string]*occupant{}
		r.gone = true
		s.mu.Lock()
		if s.rooms[r.bare] == r {
			delete(s.rooms, r.bare)
			for _, o := range r.ownerJIDs() {
				s.uncount(o)
			}
		}
		s.mu.Unlock()
		r.unlock()
	}
}

// leaveNode hands the rooms this node hosts on as it stops: its own
// sessions leave them (they end with the node), the others stay recorded
// for the next host, and the leases go.
func (s *Service) leaveNode() {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rooms {
		r.mu.Lock()
		for full := range r.byFull {
			if fj, err := jid.Parse(full); err == nil && s.srv.SessionHere(fj) != nil {
				r.leave(fj, "")
			}
		}
		gone := r.gone
		room := r.bare
		r.later(func(ctx context.Context) {
			if !gone {
				if err := s.Hosting.ReleaseRoom(ctx, room, false); err != nil {
					s.log.Warn("releasing a room", "room", room, "err", err)
				}
			}
		})
		wg.Add(1)
		r.later(func(context.Context) { wg.Done() })
		r.unlock()
	}
	wg.Wait()
}

// release gives up the lease of a room this node does not serve (it does
// not exist, or is gone), with its recorded occupants.
func (s *Service) release(ctx context.Context, bare string) {
	if !s.clustered() {
		return
	}
	s.mu.Lock()
	_, served := s.rooms[bare]
	s.mu.Unlock()
	if served {
		return // made again meanwhile
	}
	if err := s.Hosting.ReleaseRoom(ctx, bare, true); err != nil {
		s.log.Warn("releasing a room", "room", bare, "err", err)
	}
}

// sessionsGone takes the sessions of a node that died out of the rooms
// hosted here.
func (s *Service) sessionsGone(_ context.Context, gone map[string][]string) {
	for bare, resources := range gone {
		for _, res := range resources {
			full := bare + "/" + res
			s.mu.Lock()
			var rooms []*room
			for r := range s.joined[full] {
				rooms = append(rooms, r)
			}
			s.mu.Unlock()
			fj, err := jid.Parse(full)
			if err != nil {
				continue
			}
			for _, r := range rooms {
				r.mu.Lock()
				r.leave(fj, "")
				r.unlock()
			}
		}
	}
}

// nodeOf returns the node of the cluster holding the occupant session m
// when it is another node's (so that the room's copies for it go there
// together with the others for that node), "" otherwise. The nodes of an
// account's sessions are read from the registry once and kept while the
// sessions are in rooms here (track forgets them).
func (s *Service) nodeOf(m member) string {
	if !s.clustered() || m.sess != nil || s.deliverTo != nil || m.jid.Domainpart() != s.srv.Domain {
		return ""
	}
	s.mu.Lock()
	node, ok := s.nodes[m.full]
	s.mu.Unlock()
	if ok {
		return node
	}
	if s.srv.SessionHere(m.jid) != nil {
		return ""
	}
	list, err := s.srv.Registry().Resources(s.srv.Context(), m.jid.Bare().String())
	if err != nil {
		return ""
	}
	bare := m.jid.Bare().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range list {
		full := bare + "/" + r.Resource
		if r.Node != s.srv.Node() && s.joined[full] != nil {
			s.nodes[full] = r.Node
		}
	}
	return s.nodes[m.full]
}

// A nodeBatch gathers the room's copies for occupants on other nodes: for
// each stanza and node, the occupants there, to hand each node its share
// in one message, and all of them in one round trip over the bus, in the
// order the room made them.
type nodeBatch struct {
	fs []xmpp.NodeFanout
	at map[string]int // node → index in fs of the current stanza's share
}

func (b *nodeBatch) add(node string, m member, f xmpp.Fanout) {
	if n := len(b.fs); n > 0 && b.fs[n-1].F.Template() != f.Template() {
		clear(b.at) // a new stanza: new shares, after the others
	}
	if b.at == nil {
		b.at = make(map[string]int)
	}
	i, ok := b.at[node]
	if !ok {
		i = len(b.fs)
		b.at[node] = i
		b.fs = append(b.fs, xmpp.NodeFanout{Node: node, F: f})
	}
	b.fs[i].To = append(b.fs[i].To, m.full)
}

func (b *nodeBatch) flush(s *Service) {
	if len(b.fs) == 0 {
		return
	}
	taken := s.srv.SendFanouts(s.srv.Context(), b.fs)
	for i, nf := range b.fs {
		if !taken[i] {
			// The node is gone: its sessions leave when the registry says
			// so (sessionsGone); meanwhile ask the registry again.
			s.mu.Lock()
			for _, full := range nf.To {
				delete(s.nodes, full)
			}
			s.mu.Unlock()
		}
	}
	b.fs = b.fs[:0]
	clear(b.at)
}
