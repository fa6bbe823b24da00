package muc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// The server's administrators (the admin API) act on rooms through the
// methods below, on the live room when the service serves it, so that
// occupants see a change at once (XEP-0045 §10.2.1, §10.9), and on
// storage otherwise. They act as the service itself: no affiliation is
// needed, and no owner limit applies.

// ErrLastOwner is the error of a change that would leave a room without an
// owner (XEP-0045 §10.6: a room keeps at least one).
var ErrLastOwner = errors.New("muc: a room keeps at least one owner")

// A RoomState is a room as the administrators see it: what persists, its
// affiliations sorted by JID, and how many occupants it has now.
type RoomState struct {
	storage.Room
	Affiliations []storage.Affiliation
	Occupants    int
}

// CreateRoom makes a room with its affiliations; storage.ErrExists when
// the room exists. Nothing of it stays when a step fails. A room that is
// not persistent lives in memory only, until its last occupant leaves.
func (s *Service) CreateRoom(ctx context.Context, st storage.Room, affs []storage.Affiliation) error {
	rj, err := jid.Parse(st.JID)
	if err != nil || rj.Domainpart() != s.Domain || rj.Localpart() == "" || rj.Resourcepart() != "" {
		return fmt.Errorf("muc: %q is not a room of %s", st.JID, s.Domain)
	}
	for _, a := range affs {
		if err := a.Validate(); err != nil || a.Affiliation == storage.AffNone {
			return fmt.Errorf("muc: affiliation of %s: %q", a.JID, a.Affiliation)
		}
	}
	if st.Created.IsZero() {
		st.Created = time.Now().UTC()
	}
	if node, err := s.hostElsewhere(ctx, st.JID); err != nil || node != "" {
		if err != nil {
			return err
		}
		return fmt.Errorf("muc: room %s (on node %s): %w", st.JID, node, storage.ErrExists)
	}
	if s.lookup(ctx, st.JID) != nil {
		return fmt.Errorf("muc: room %s: %w", st.JID, storage.ErrExists)
	}
	if s.Store != nil && st.Config.Persistent {
		if err := s.Store.SaveRoom(ctx, st); err != nil {
			return err
		}
		for _, a := range affs {
			if err := s.Store.SetAffiliation(ctx, st.JID, a); err != nil {
				// Undo, so that a failed creation leaves nothing behind.
				if derr := s.Store.DeleteRoom(context.WithoutCancel(ctx), st.JID); derr != nil {
					s.log.Warn("undoing a room's creation", "room", st.JID, "err", derr)
				}
				return err
			}
		}
	}
	r := newRoom(s, rj)
	r.cfg, r.subject, r.subjectBy, r.created = st.Config, st.Subject, st.SubjectBy, st.Created
	for _, a := range affs {
		r.affs[a.JID] = a
	}
	s.mu.Lock()
	taken := s.rooms[r.bare] != nil
	if !taken {
		s.adopt(r)
	}
	s.mu.Unlock()
	if taken {
		// Someone joined (and so created) it meanwhile: it is theirs, and
		// what was stored goes (the joined room is not stored until its
		// owner configures it).
		if s.Store != nil && st.Config.Persistent {
			if err := s.Store.DeleteRoom(context.WithoutCancel(ctx), st.JID); err != nil {
				s.log.Warn("undoing a room's creation", "room", st.JID, "err", err)
			}
		}
		return fmt.Errorf("muc: room %s: %w", st.JID, storage.ErrExists)
	}
	return nil
}

// Rooms lists the rooms the service serves or stores, sorted by JID.
func (s *Service) Rooms(ctx context.Context) ([]RoomState, error) {
	byJID := make(map[string]RoomState)
	if s.Store != nil {
		stored, err := s.Store.ListRooms(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range stored {
			byJID[r.JID] = RoomState{Room: r}
		}
	}
	s.mu.Lock()
	live := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		live = append(live, r)
	}
	s.mu.Unlock()
	for _, r := range live {
		if st, ok := r.state(); ok {
			byJID[r.bare] = st
		}
	}
	list := make([]RoomState, 0, len(byJID))
	for _, st := range byJID {
		list = append(list, st)
	}
	slices.SortFunc(list, func(a, b RoomState) int { return strings.Compare(a.JID, b.JID) })
	return list, nil
}

// Room returns one room with its affiliations; storage.ErrNotFound when
// there is none.
func (s *Service) Room(ctx context.Context, bare string) (RoomState, error) {
	if node, err := s.hostElsewhere(ctx, bare); err != nil || node != "" {
		if err != nil {
			return RoomState{}, err
		}
		return s.callHost(ctx, node, apiCall{Call: "room", Room: bare})
	}
	return s.roomHere(ctx, bare)
}

func (s *Service) roomHere(ctx context.Context, bare string) (RoomState, error) {
	r := s.lookup(ctx, bare)
	if r == nil {
		return RoomState{}, fmt.Errorf("muc: room %s: %w", bare, storage.ErrNotFound)
	}
	st, ok := r.state()
	if !ok {
		return RoomState{}, fmt.Errorf("muc: room %s: %w", bare, storage.ErrNotFound)
	}
	return st, nil
}

// state is the room as RoomState says; false when it is gone.
func (r *room) state() (RoomState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return RoomState{}, false
	}
	affs := r.affList()
	slices.SortFunc(affs, func(a, b storage.Affiliation) int { return strings.Compare(a.JID, b.JID) })
	return RoomState{Room: r.stored(), Affiliations: affs, Occupants: len(r.byNick)}, true
}

// live runs fn on the room, locked, and carries out what it queued;
// storage.ErrNotFound when there is no such room.
func (s *Service) live(ctx context.Context, bare string, fn func(r *room) error) error {
	r := s.lookup(ctx, bare)
	if r == nil {
		return fmt.Errorf("muc: room %s: %w", bare, storage.ErrNotFound)
	}
	r.mu.Lock()
	defer r.unlock()
	if r.gone {
		return fmt.Errorf("muc: room %s: %w", bare, storage.ErrNotFound)
	}
	return fn(r)
}

// Configure replaces a room's configuration, as an owner's form would
// (§10.2): occupants get status 104, those who may no longer stay leave,
// and the room unlocks if it was new.
func (s *Service) Configure(ctx context.Context, bare string, cfg storage.RoomConfig) error {
	if node, err := s.hostElsewhere(ctx, bare); err != nil || node != "" {
		if err != nil {
			return err
		}
		_, err := s.callHost(ctx, node, apiCall{Call: "configure", Room: bare, Config: &cfg})
		return err
	}
	return s.configureHere(ctx, bare, cfg)
}

func (s *Service) configureHere(ctx context.Context, bare string, cfg storage.RoomConfig) error {
	return s.live(ctx, bare, func(r *room) error {
		r.reconfigure(cfg)
		return nil
	})
}

// SetAffiliations applies affiliations to a room, all or none (AffNone
// removes one): each occupant concerned is told, or leaves when banned or,
// in a members-only room, no longer a member (§9, §10). ErrLastOwner when
// the room would have no owner left.
func (s *Service) SetAffiliations(ctx context.Context, bare string, affs []storage.Affiliation) error {
	for _, a := range affs {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("muc: %w", err)
		}
	}
	if node, err := s.hostElsewhere(ctx, bare); err != nil || node != "" {
		if err != nil {
			return err
		}
		_, err := s.callHost(ctx, node, apiCall{Call: "affiliations", Room: bare, Affs: affs})
		return err
	}
	return s.setAffiliationsHere(ctx, bare, affs)
}

func (s *Service) setAffiliationsHere(ctx context.Context, bare string, affs []storage.Affiliation) error {
	return s.live(ctx, bare, func(r *room) error {
		owners := r.owners()
		for _, a := range affs {
			switch was, is := r.affiliation(a.JID) == storage.AffOwner, a.Affiliation == storage.AffOwner; {
			case was && !is:
				owners--
			case !was && is:
				owners++
			}
		}
		if owners < 1 && r.owners() > 0 {
			return ErrLastOwner
		}
		for _, a := range affs {
			r.affiliate(a, "")
		}
		if r.cfg.Persistent {
			stored, list := r.stored(), r.affList()
			r.later(func(ctx context.Context) {
				r.svc.save(ctx, stored, nil)
				r.syncAffiliations(ctx, list)
			})
		}
		return nil
	})
}

// Destroy ends a room as its owner's <destroy/> does (§10.9): every
// occupant gets unavailable presence with the reason, and the stored room,
// its affiliations and its archive go.
func (s *Service) Destroy(ctx context.Context, bare, reason string) error {
	if node, err := s.hostElsewhere(ctx, bare); err != nil || node != "" {
		if err != nil {
			return err
		}
		_, err := s.callHost(ctx, node, apiCall{Call: "destroy", Room: bare, Reason: reason})
		return err
	}
	return s.destroyHere(ctx, bare, reason)
}

func (s *Service) destroyHere(ctx context.Context, bare, reason string) error {
	return s.live(ctx, bare, func(r *room) error {
		r.destroy("", reason)
		return nil
	})
}

// Announce sends a groupchat message from the room itself (its bare JID,
// as the service's own notices such as status 104 come, §10.2.1) to every
// occupant: a body, a subject, or both. A body is kept in the history for
// newcomers; a subject alone changes the room's subject (§8.1).
func (s *Service) Announce(ctx context.Context, bare, subject, body string) error {
	if node, err := s.hostElsewhere(ctx, bare); err != nil || node != "" {
		if err != nil {
			return err
		}
		_, err := s.callHost(ctx, node, apiCall{Call: "announce", Room: bare, Subject: subject, Body: body})
		return err
	}
	return s.announceHere(ctx, bare, subject, body)
}

func (s *Service) announceHere(ctx context.Context, bare, subject, body string) error {
	return s.live(ctx, bare, func(r *room) error {
		m := xmpp.NewElement(xmpp.NSClient, "message", "type", "groupchat", "from", r.bare,
			"id", rand.Text())
		if subject != "" {
			m.Add(xmpp.NewElement(xmpp.NSClient, "subject").Add(xmpp.Text(subject)))
		}
		if body != "" {
			m.Add(xmpp.NewElement(xmpp.NSClient, "body").Add(xmpp.Text(body)))
		}
		if subject != "" && body == "" {
			r.subject, r.subjectBy = subject, ""
			stored := r.stored()
			r.later(func(ctx context.Context) { r.svc.save(ctx, stored, nil) })
		}
		f := xmpp.NewFanout(m)
		if body != "" && r.cfg.HistoryLength > 0 {
			r.remember(m, f.Size())
		}
		for _, o := range r.byNick {
			for _, sess := range o.sessions {
				r.deliver(sess, f)
			}
		}
		return nil
	})
}
