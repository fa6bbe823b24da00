package storagetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

func runRosters(t *testing.T, open func(t *testing.T) storage.Store) {
	const alice, bob = "alice@example.com", "bob@example.com"

	t.Run("Empty", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		items, err := s.Roster(ctx, alice)
		if err != nil {
			t.Fatalf("Roster of an account with none: %v", err)
		}
		if len(items) != 0 {
			t.Fatalf("Roster = %+v, want none", items)
		}
		_, err = s.RosterItem(ctx, alice, bob)
		wantErr(t, "RosterItem", err, storage.ErrNotFound)
		err = s.DeleteRosterItem(ctx, alice, bob)
		wantErr(t, "DeleteRosterItem", err, storage.ErrNotFound)
	})

	// Every subscription state and flag survives the round trip, and groups
	// come back sorted and distinct.
	t.Run("RoundTrip", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		cases := []storage.RosterItem{
			{Contact: "a@example.com", Subscription: storage.SubNone},
			{Contact: "b@example.com", Name: "Bob", Subscription: storage.SubTo, PendingIn: true},
			{Contact: "c@example.com", Name: "Cé", Subscription: storage.SubFrom, Ask: true},
			{Contact: "d@example.com", Subscription: storage.SubBoth, Groups: []string{"Work"}},
			{Contact: "e@example.com", Subscription: storage.SubNone, Ask: true, PendingIn: true, Approved: true,
				Groups: []string{"b", "a", "b", "Z", "é", "a"}},
		}
		for _, item := range cases {
			if err := s.PutRosterItem(ctx, alice, item, 0); err != nil {
				t.Fatalf("PutRosterItem(%s): %v", item.Contact, err)
			}
		}
		for _, item := range cases {
			want := item
			want.Groups = slices.Compact(slices.Sorted(slices.Values(item.Groups)))
			got, err := s.RosterItem(ctx, alice, item.Contact)
			if err != nil {
				t.Fatalf("RosterItem(%s): %v", item.Contact, err)
			}
			checkItem(t, got, want)
		}
	})

	t.Run("RosterSorted", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		// Byte order, not a locale's.
		contacts := []string{"zoe@example.com", "ab@example.com", "a.c@example.com", "a@example.com",
			"é@example.com", "e@example.org", "a@conference.example.com"}
		for _, c := range contacts {
			if err := s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: c, Subscription: storage.SubBoth}, 0); err != nil {
				t.Fatalf("PutRosterItem(%s): %v", c, err)
			}
		}
		items, err := s.Roster(ctx, alice)
		if err != nil {
			t.Fatalf("Roster: %v", err)
		}
		if got, want := rosterContacts(items), slices.Sorted(slices.Values(contacts)); !slices.Equal(got, want) {
			t.Errorf("Roster contacts =\n  %q\nwant (byte order)\n  %q", got, want)
		}
	})

	t.Run("Replace", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		first := storage.RosterItem{Contact: bob, Name: "Bob", Subscription: storage.SubTo,
			Ask: true, PendingIn: true, Approved: true, Groups: []string{"Friends", "Work"}}
		if err := s.PutRosterItem(ctx, alice, first, 0); err != nil {
			t.Fatalf("PutRosterItem: %v", err)
		}
		// Every field replaced, down to the zero values.
		second := storage.RosterItem{Contact: bob, Subscription: storage.SubBoth}
		if err := s.PutRosterItem(ctx, alice, second, 0); err != nil {
			t.Fatalf("second PutRosterItem: %v", err)
		}
		got, err := s.RosterItem(ctx, alice, bob)
		if err != nil {
			t.Fatalf("RosterItem: %v", err)
		}
		checkItem(t, got, second)
		items, err := s.Roster(ctx, alice)
		if err != nil {
			t.Fatalf("Roster: %v", err)
		}
		if len(items) != 1 {
			t.Errorf("Roster has %d items after a replace, want 1", len(items))
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, c := range []string{bob, "carol@example.com"} {
			if err := s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: c, Subscription: storage.SubBoth}, 0); err != nil {
				t.Fatalf("PutRosterItem(%s): %v", c, err)
			}
		}
		if err := s.DeleteRosterItem(ctx, alice, bob); err != nil {
			t.Fatalf("DeleteRosterItem: %v", err)
		}
		_, err := s.RosterItem(ctx, alice, bob)
		wantErr(t, "RosterItem after DeleteRosterItem", err, storage.ErrNotFound)
		err = s.DeleteRosterItem(ctx, alice, bob)
		wantErr(t, "second DeleteRosterItem", err, storage.ErrNotFound)
		items, err := s.Roster(ctx, alice)
		if err != nil {
			t.Fatalf("Roster: %v", err)
		}
		if got := rosterContacts(items); !slices.Equal(got, []string{"carol@example.com"}) {
			t.Errorf("Roster after delete = %q, want only carol", got)
		}
	})

	t.Run("OwnersApart", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const carol = "carol@example.com"
		if err := s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: carol, Name: "from alice", Subscription: storage.SubTo}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRosterItem(ctx, bob, storage.RosterItem{Contact: carol, Name: "from bob", Subscription: storage.SubFrom}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRosterItem(ctx, bob, storage.RosterItem{Contact: alice, Subscription: storage.SubNone}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRosterItem(ctx, alice, carol); err != nil {
			t.Fatalf("DeleteRosterItem: %v", err)
		}
		got, err := s.RosterItem(ctx, bob, carol)
		if err != nil {
			t.Fatalf("bob's item went with alice's: %v", err)
		}
		checkItem(t, got, storage.RosterItem{Contact: carol, Name: "from bob", Subscription: storage.SubFrom})
		items, err := s.Roster(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 0 {
			t.Errorf("alice's roster = %q, want none (bob's items are not hers)", rosterContacts(items))
		}
	})

	t.Run("Limit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const max = 2
		put := func(owner, contact, name string) error {
			return s.PutRosterItem(ctx, owner, storage.RosterItem{Contact: contact, Name: name, Subscription: storage.SubNone}, max)
		}
		for _, c := range []string{"a@example.com", "b@example.com"} {
			if err := put(alice, c, ""); err != nil {
				t.Fatalf("PutRosterItem(%s) below the limit: %v", c, err)
			}
		}
		wantErr(t, "PutRosterItem over the limit", put(alice, "c@example.com", ""), storage.ErrLimit)
		if _, err := s.RosterItem(ctx, alice, "c@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("the item refused for the limit was stored: RosterItem err = %v", err)
		}
		// Replacing is not adding, at the limit or over it (max lowered).
		if err := put(alice, "a@example.com", "renamed"); err != nil {
			t.Errorf("replacing at the limit: %v", err)
		}
		if err := s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: "b@example.com", Subscription: storage.SubBoth}, 1); err != nil {
			t.Errorf("replacing over a lowered limit: %v", err)
		}
		// The limit is per account, and 0 means none.
		if err := put(bob, "c@example.com", ""); err != nil {
			t.Errorf("bob's roster counts alice's items: %v", err)
		}
		if err := s.PutRosterItem(ctx, alice, storage.RosterItem{Contact: "c@example.com", Subscription: storage.SubNone}, 0); err != nil {
			t.Errorf("PutRosterItem with max 0: %v", err)
		}
		// Deleting makes room.
		for _, c := range []string{"a@example.com", "b@example.com"} {
			if err := s.DeleteRosterItem(ctx, alice, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := put(alice, "d@example.com", ""); err != nil {
			t.Errorf("PutRosterItem after deleting: %v", err)
		}
	})

	// Concurrent adds cannot overshoot the limit: counting and inserting are
	// one atomic step.
	t.Run("ConcurrentLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n, max = 20, 10
		errs := concurrently(n, func(i int) error {
			item := storage.RosterItem{Contact: fmt.Sprintf("c%02d@example.com", i), Subscription: storage.SubNone}
			return s.PutRosterItem(ctx, alice, item, max)
		})
		checkLimited(t, "PutRosterItem", errs, max)
		items, err := s.Roster(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != max {
			t.Errorf("roster holds %d items, want %d", len(items), max)
		}
	})

	// DeleteUser takes the account's roster and offline queue with it, but
	// not its group memberships (they are the app's) nor anyone else's data.
	t.Run("DeleteUser", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, u := range []string{alice, bob} {
			if err := s.CreateUser(ctx, u, creds(1)); err != nil {
				t.Fatal(err)
			}
			if err := s.PutRosterItem(ctx, u, storage.RosterItem{Contact: "carol@example.com", Subscription: storage.SubBoth}, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.StoreOffline(ctx, u, []byte("<message/>"), storage.OfflineLimits{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateGroup(ctx, storage.Group{ID: "t1", Kind: storage.KindTeam, Name: "Team"}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddMember(ctx, "t1", alice); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, alice); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		if items, err := s.Roster(ctx, alice); err != nil || len(items) != 0 {
			t.Errorf("alice's roster after DeleteUser = %+v, %v; want none", items, err)
		}
		if msgs, err := s.OfflineMessages(ctx, alice); err != nil || len(msgs) != 0 {
			t.Errorf("alice's offline messages after DeleteUser = %d, %v; want none", len(msgs), err)
		}
		if member, err := s.IsMember(ctx, alice); err != nil || !member {
			t.Errorf("IsMember(alice) after DeleteUser = %v, %v; want true (memberships are the app's)", member, err)
		}
		if items, err := s.Roster(ctx, bob); err != nil || len(items) != 1 {
			t.Errorf("bob's roster after alice's DeleteUser = %+v, %v; want 1 item", items, err)
		}
		if msgs, err := s.OfflineMessages(ctx, bob); err != nil || len(msgs) != 1 {
			t.Errorf("bob's offline messages after alice's DeleteUser = %d, %v; want 1", len(msgs), err)
		}
	})
}

func checkItem(t *testing.T, got, want storage.RosterItem) {
	t.Helper()
	noGroups := func(i storage.RosterItem) storage.RosterItem {
		i.Groups = nil
		return i
	}
	// Nil and empty groups alike.
	if !reflect.DeepEqual(noGroups(got), noGroups(want)) || !slices.Equal(got.Groups, want.Groups) {
		t.Errorf("roster item =\n  %+v\nwant\n  %+v", got, want)
	}
}

func rosterContacts(items []storage.RosterItem) []string {
	contacts := make([]string, len(items))
	for i, item := range items {
		contacts[i] = item.Contact
	}
	return contacts
}

// checkLimited checks the results of concurrent calls against a limit of
// max: exactly max succeeded, and the others failed with ErrLimit.
func checkLimited(t *testing.T, op string, errs []error, max int) {
	t.Helper()
	checkWinners(t, op, errs, max, storage.ErrLimit)
}

// checkWinners checks the results of concurrent calls: exactly n
// succeeded, and the others failed with lost.
func checkWinners(t *testing.T, op string, errs []error, n int, lost error) {
	t.Helper()
	var ok int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, lost):
			t.Errorf("goroutine %d: %s: %v, want nil or %v", i, op, err, lost)
		}
	}
	if ok != n {
		t.Errorf("%d of %d concurrent %s calls succeeded, want %d", ok, len(errs), op, n)
	}
}
