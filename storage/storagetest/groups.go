package storagetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// watchTimeout bounds every wait for a watch.
const watchTimeout = 10 * time.Second

func runGroups(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	team := func(id, name string) storage.Group {
		return storage.Group{ID: id, Kind: storage.KindTeam, Name: name}
	}
	project := func(id, name, parent string) storage.Group {
		return storage.Group{ID: id, Kind: storage.KindProject, Name: name, Parent: parent}
	}

	t.Run("CreateAndList", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		groups, err := s.ListGroups(ctx)
		if err != nil {
			t.Fatalf("ListGroups on an empty store: %v", err)
		}
		if len(groups) != 0 {
			t.Fatalf("ListGroups on an empty store = %+v", groups)
		}
		// Created parents first; listed in byte order of ID.
		want := []storage.Group{
			team("eng", "Engineering"),
			team("Ops", "Opérations"),
			project("apollo", "Apollo", "eng"),
			project("a.b", "Loose project", ""),
		}
		for _, g := range want {
			if err := s.CreateGroup(ctx, g); err != nil {
				t.Fatalf("CreateGroup(%+v): %v", g, err)
			}
		}
		for _, g := range want {
			got, err := s.Group(ctx, g.ID)
			if err != nil {
				t.Fatalf("Group(%s): %v", g.ID, err)
			}
			if got != g {
				t.Errorf("Group(%s) = %+v, want %+v", g.ID, got, g)
			}
		}
		slices.SortFunc(want, func(a, b storage.Group) int { return strings.Compare(a.ID, b.ID) })
		got, err := s.ListGroups(ctx)
		if err != nil {
			t.Fatalf("ListGroups: %v", err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ListGroups =\n  %+v\nwant\n  %+v", got, want)
		}
	})

	t.Run("CreateErrors", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateGroup(ctx, team("eng", "Engineering")); err != nil {
			t.Fatal(err)
		}
		err := s.CreateGroup(ctx, team("eng", "Other"))
		wantErr(t, "CreateGroup with a taken ID", err, storage.ErrExists)
		if g, err := s.Group(ctx, "eng"); err != nil || g.Name != "Engineering" {
			t.Errorf("after a failed create, Group = %+v, %v; want the first one", g, err)
		}
		err = s.CreateGroup(ctx, project("apollo", "Apollo", "nope"))
		wantErr(t, "CreateGroup with a missing parent", err, storage.ErrNotFound)
		_, err = s.Group(ctx, "apollo")
		wantErr(t, "Group after a failed create", err, storage.ErrNotFound)
		_, err = s.Group(ctx, "nope")
		wantErr(t, "Group", err, storage.ErrNotFound)
		err = s.DeleteGroup(ctx, "nope")
		wantErr(t, "DeleteGroup", err, storage.ErrNotFound)
	})

	t.Run("Rename", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateGroup(ctx, team("eng", "Engineering")); err != nil {
			t.Fatal(err)
		}
		if err := s.RenameGroup(ctx, "eng", "Engineers"); err != nil {
			t.Fatalf("RenameGroup: %v", err)
		}
		// The same name again is no error: the group exists.
		if err := s.RenameGroup(ctx, "eng", "Engineers"); err != nil {
			t.Fatalf("RenameGroup to its own name: %v", err)
		}
		if got, err := s.Group(ctx, "eng"); err != nil || got != team("eng", "Engineers") {
			t.Fatalf("Group after rename = %+v, %v", got, err)
		}
		if err := s.RenameGroup(ctx, "nope", "X"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("RenameGroup(absent) = %v, want ErrNotFound", err)
		}
	})

	t.Run("ChangeMembers", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const alice, bob, carol = "alice@example.com", "bob@example.com", "carol@example.com"
		if err := s.CreateGroup(ctx, team("eng", "Engineering")); err != nil {
			t.Fatal(err)
		}
		if err := s.AddMember(ctx, "eng", alice); err != nil {
			t.Fatal(err)
		}
		// Adding a member and removing a non-member are no errors.
		if err := s.ChangeMembers(ctx, "eng", []string{alice, bob, carol}, []string{"nobody@example.com"}); err != nil {
			t.Fatalf("ChangeMembers: %v", err)
		}
		checkMembers(t, s, "eng", []string{alice, bob, carol})
		if err := s.ChangeMembers(ctx, "eng", nil, []string{alice, carol}); err != nil {
			t.Fatalf("ChangeMembers removing: %v", err)
		}
		checkMembers(t, s, "eng", []string{bob})
		if err := s.ChangeMembers(ctx, "nope", []string{alice}, nil); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("ChangeMembers(absent group) = %v, want ErrNotFound", err)
		}
		if ok, err := s.IsMember(ctx, alice); err != nil || ok {
			t.Errorf("IsMember(alice) after a refused change = %v, %v", ok, err)
		}
	})

	t.Run("Members", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateGroup(ctx, team("eng", "Engineering")); err != nil {
			t.Fatal(err)
		}
		checkMembers(t, s, "eng", nil)
		for _, jid := range []string{"zoe@example.com", "ab@example.com", "a@example.com", "é@example.com"} {
			if err := s.AddMember(ctx, "eng", jid); err != nil {
				t.Fatalf("AddMember(%s): %v", jid, err)
			}
		}
		err := s.AddMember(ctx, "eng", "a@example.com")
		wantErr(t, "AddMember of a member", err, storage.ErrExists)
		err = s.AddMember(ctx, "nope", "a@example.com")
		wantErr(t, "AddMember to a missing group", err, storage.ErrNotFound)
		_, err = s.Members(ctx, "nope")
		wantErr(t, "Members of a missing group", err, storage.ErrNotFound)
		checkMembers(t, s, "eng", []string{"a@example.com", "ab@example.com", "zoe@example.com", "é@example.com"})

		if err := s.RemoveMember(ctx, "eng", "ab@example.com"); err != nil {
			t.Fatalf("RemoveMember: %v", err)
		}
		err = s.RemoveMember(ctx, "eng", "ab@example.com")
		wantErr(t, "RemoveMember of a non-member", err, storage.ErrNotFound)
		err = s.RemoveMember(ctx, "nope", "a@example.com")
		wantErr(t, "RemoveMember from a missing group", err, storage.ErrNotFound)
		checkMembers(t, s, "eng", []string{"a@example.com", "zoe@example.com", "é@example.com"})
	})

	// Deleting a group takes its memberships; deleting a team leaves its
	// projects, without a team.
	t.Run("DeleteCascades", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, g := range []storage.Group{team("eng", "Engineering"), project("apollo", "Apollo", "eng")} {
			if err := s.CreateGroup(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range [][2]string{{"eng", "alice@example.com"}, {"eng", "bob@example.com"}, {"apollo", "bob@example.com"}} {
			if err := s.AddMember(ctx, m[0], m[1]); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteGroup(ctx, "eng"); err != nil {
			t.Fatalf("DeleteGroup: %v", err)
		}
		_, err := s.Members(ctx, "eng")
		wantErr(t, "Members of a deleted group", err, storage.ErrNotFound)
		checkIsMember(t, s, "alice@example.com", false)
		checkIsMember(t, s, "bob@example.com", true)
		if g, err := s.Group(ctx, "apollo"); err != nil || g != project("apollo", "Apollo", "") {
			t.Errorf("the deleted team's project: Group = %+v, %v; want it without a parent", g, err)
		}
		checkMembers(t, s, "apollo", []string{"bob@example.com"})
		// The ID is free again, with no members.
		if err := s.CreateGroup(ctx, team("eng", "Engineering 2")); err != nil {
			t.Fatalf("CreateGroup after DeleteGroup: %v", err)
		}
		checkMembers(t, s, "eng", nil)
	})

	t.Run("CoMembers", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const alice, bob, carol, dave, erin, frank = "alice@example.com", "bob@example.com",
			"carol@example.com", "dave@example.com", "erin@example.com", "frank@example.com"
		for _, g := range []storage.Group{
			team("eng", "Engineering"),
			project("apollo", "Apollo", "eng"),
			team("ops", "Operations"),
			// Two groups with one name: a contact in both shows it once.
			team("x", "Shared"),
			team("y", "Shared"),
			team("empty", "Empty"),
		} {
			if err := s.CreateGroup(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range [][2]string{
			{"eng", alice}, {"eng", bob}, {"eng", carol},
			{"apollo", alice}, {"apollo", bob}, {"apollo", dave},
			{"ops", erin},
			{"x", alice}, {"x", frank}, {"y", alice}, {"y", frank},
		} {
			if err := s.AddMember(ctx, m[0], m[1]); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			jid  string
			want []storage.SharedContact
		}{
			{alice, []storage.SharedContact{
				{JID: bob, Groups: []string{"Apollo", "Engineering"}},
				{JID: carol, Groups: []string{"Engineering"}},
				{JID: dave, Groups: []string{"Apollo"}},
				{JID: frank, Groups: []string{"Shared"}},
			}},
			{bob, []storage.SharedContact{
				{JID: alice, Groups: []string{"Apollo", "Engineering"}},
				{JID: carol, Groups: []string{"Engineering"}},
				{JID: dave, Groups: []string{"Apollo"}},
			}},
			{dave, []storage.SharedContact{
				{JID: alice, Groups: []string{"Apollo"}},
				{JID: bob, Groups: []string{"Apollo"}},
			}},
			{erin, nil},                 // alone in ops
			{"nobody@example.com", nil}, // in no group
		} {
			got, err := s.CoMembers(ctx, c.jid)
			if err != nil {
				t.Fatalf("CoMembers(%s): %v", c.jid, err)
			}
			if len(got) != 0 || len(c.want) != 0 {
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("CoMembers(%s) =\n  %+v\nwant\n  %+v", c.jid, got, c.want)
				}
			}
		}
		checkIsMember(t, s, alice, true)
		checkIsMember(t, s, erin, true)
		checkIsMember(t, s, "nobody@example.com", false)
	})

	t.Run("Watch", func(t *testing.T) {
		s := open(t)
		watchCtx, cancel := context.WithCancel(t.Context())
		defer cancel()
		ch, err := s.WatchGroups(watchCtx)
		if err != nil {
			t.Fatalf("WatchGroups: %v", err)
		}
		// Changes made right after WatchGroups returns are seen.
		changeGroups(t, s, []<-chan storage.GroupChange{ch})
		cancel()
		AwaitClosed(t, ch)
	})

	// A watch sees what another store on the same database (another
	// process: xmppctl, a second node) changes.
	t.Run("WatchOtherStore", func(t *testing.T) {
		if reopen == nil {
			t.Skip("the backend gave no reopen")
		}
		s := open(t)
		other := reopen(t, s)
		var chans []<-chan storage.GroupChange
		for _, st := range []storage.Store{s, other} {
			ch, err := st.WatchGroups(t.Context())
			if err != nil {
				t.Fatalf("WatchGroups: %v", err)
			}
			chans = append(chans, ch)
		}
		changeGroups(t, other, chans)
	})
}

// changeGroups makes changes through s and awaits each on every one of chans.
func changeGroups(t *testing.T, s storage.Store, chans []<-chan storage.GroupChange) {
	t.Helper()
	ctx := t.Context()
	await := func(want storage.GroupChange) {
		t.Helper()
		for _, ch := range chans {
			AwaitChange(t, ch, want)
		}
	}
	const alice, bob = "alice@example.com", "bob@example.com"
	if err := s.CreateGroup(ctx, storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}); err != nil {
		t.Fatal(err)
	}
	await(storage.GroupChange{Group: "eng"})
	if err := s.AddMember(ctx, "eng", alice); err != nil {
		t.Fatal(err)
	}
	await(storage.GroupChange{Group: "eng", JID: alice})
	if err := s.AddMember(ctx, "eng", bob); err != nil {
		t.Fatal(err)
	}
	await(storage.GroupChange{Group: "eng", JID: bob})
	if err := s.RenameGroup(ctx, "eng", "Engineers"); err != nil {
		t.Fatal(err)
	}
	await(storage.GroupChange{Group: "eng"})
	if err := s.RemoveMember(ctx, "eng", alice); err != nil {
		t.Fatal(err)
	}
	await(storage.GroupChange{Group: "eng", JID: alice})
	if err := s.DeleteGroup(ctx, "eng"); err != nil {
		t.Fatal(err)
	}
	await(storage.GroupChange{Group: "eng"})
}

// AwaitChange reads ch until want arrives and returns the changes it skipped
// on the way; it fails t if the channel closes or 10 s pass first.
func AwaitChange(t testing.TB, ch <-chan storage.GroupChange, want storage.GroupChange) []storage.GroupChange {
	t.Helper()
	timeout := time.After(watchTimeout)
	var seen []storage.GroupChange
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed while awaiting %+v (saw %+v)", want, seen)
			}
			if c == want {
				return seen
			}
			seen = append(seen, c)
		case <-timeout:
			t.Fatalf("no %+v within %v (saw %+v)", want, watchTimeout, seen)
		}
	}
}

// AwaitClosed drains ch and fails t unless it is closed within 10 s.
func AwaitClosed(t testing.TB, ch <-chan storage.GroupChange) {
	t.Helper()
	timeout := time.After(watchTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("watch not closed within %v of its context ending", watchTimeout)
		}
	}
}

func checkMembers(t *testing.T, s storage.Store, group string, want []string) {
	t.Helper()
	got, err := s.Members(t.Context(), group)
	if err != nil {
		t.Fatalf("Members(%s): %v", group, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Members(%s) = %q, want %q", group, got, want)
	}
}

func checkIsMember(t *testing.T, s storage.Store, jid string, want bool) {
	t.Helper()
	got, err := s.IsMember(t.Context(), jid)
	if err != nil {
		t.Fatalf("IsMember(%s): %v", jid, err)
	}
	if got != want {
		t.Errorf("IsMember(%s) = %v, want %v", jid, got, want)
	}
}
