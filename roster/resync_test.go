package roster_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// awayStore is a real store whose group watch the test drives, and whose
// co-member reads fail while down is set, naming who was asked on calls.
type awayStore struct {
	storage.Store
	changes chan storage.GroupChange
	down    atomic.Bool
	calls   chan string
}

func (s *awayStore) WatchGroups(context.Context) (<-chan storage.GroupChange, error) {
	return s.changes, nil
}

func (s *awayStore) CoMembers(ctx context.Context, jid string) ([]storage.SharedContact, error) {
	if s.down.Load() {
		select {
		case s.calls <- jid:
		default:
		}
		return nil, errors.New("connection refused")
	}
	return s.Store.CoMembers(ctx, jid)
}

// TestResyncWhileStorageAway: a resynchronisation (the watch's
// GroupChange{}) that cannot read the groups keeps the shared contacts as
// they are; it must not take an empty answer for "no colleagues" and push
// the removal of every one of them.
func TestResyncWhileStorageAway(t *testing.T) {
	var st *awayStore
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		st = &awayStore{Store: srv.Store, changes: make(chan storage.GroupChange), calls: make(chan string, 16)}
		srv.Store = st
	})
	t.Cleanup(func() { close(st.changes) }) // before the server's shutdown
	watching(t, s)
	ctx := context.Background()
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	must(t, s.Store.CreateGroup(ctx, storage.Group{ID: "t1", Kind: storage.KindTeam, Name: "Design"}))
	must(t, s.Store.AddMember(ctx, "t1", aj.String()))
	must(t, s.Store.AddMember(ctx, "t1", bj.String()))
	a := online(t, s, aj, "a")
	a.rosterShows(t, bj.String(), "both", "")

	st.down.Store(true)
	send := func(ch storage.GroupChange) {
		select {
		case st.changes <- ch:
		case <-time.After(testenv.Timeout):
			t.Fatal("the roster module does not take group changes")
		}
	}
	send(storage.GroupChange{})
	// The watch handles changes in order: once a change for nobody is
	// being read, the resync before it is done.
	send(storage.GroupChange{Group: "t1", JID: "nobody@localhost"})
	for who := ""; who != "nobody@localhost"; {
		select {
		case who = <-st.calls:
		case <-time.After(testenv.Timeout):
			t.Fatal("no co-member read for the second change")
		}
	}
	st.down.Store(false)
	a.rosterShows(t, bj.String(), "both", "")
}
