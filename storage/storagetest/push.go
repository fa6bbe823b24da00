package storagetest

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

func runPush(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	const alice = "alice@example.com"
	secret := []storage.PushField{
		{Var: "secret", Values: []string{"eruio234vzxc2kla-91"}},
		// Values that a text round trip or a JSON object would damage: an
		// empty value, several values, markup and non-ASCII.
		{Var: "multi", Values: []string{"", "a<b>&c", "é 🎉"}},
		{Var: "no-value"},
	}

	t.Run("PutListDelete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		regs, err := s.PushRegistrations(ctx, alice)
		if err != nil {
			t.Fatalf("PushRegistrations of an account with none: %v", err)
		}
		if len(regs) != 0 {
			t.Fatalf("PushRegistrations of an account with none = %+v", regs)
		}
		puts := []storage.PushRegistration{
			{JID: "push.example.net", Node: "n2", Fields: secret},
			{JID: "push.example.net", Node: "n1"},
			{JID: "app.example.org", Node: "x"},
			{JID: "Push.example.net", Node: "n1"}, // byte order puts capitals first
		}
		for _, r := range puts {
			if err := s.PutPush(ctx, alice, r, 0); err != nil {
				t.Fatalf("PutPush(%+v): %v", r, err)
			}
		}
		// Another account's registrations are its own.
		if err := s.PutPush(ctx, "bob@example.com", storage.PushRegistration{JID: "push.example.net", Node: "n1"}, 0); err != nil {
			t.Fatalf("PutPush for bob: %v", err)
		}
		want := []storage.PushRegistration{puts[3], puts[2], puts[1], puts[0]}
		checkPush(t, s, alice, want)

		// Replacing (same JID and node) keeps one row with the new fields.
		repl := storage.PushRegistration{JID: "push.example.net", Node: "n1", Fields: secret[:1]}
		if err := s.PutPush(ctx, alice, repl, 0); err != nil {
			t.Fatalf("PutPush replacing: %v", err)
		}
		want[2] = repl
		checkPush(t, s, alice, want)

		// One node of a JID.
		n, err := s.DeletePush(ctx, alice, "push.example.net", "n2")
		if err != nil || n != 1 {
			t.Fatalf("DeletePush(node n2) = %d, %v; want 1, nil", n, err)
		}
		checkPush(t, s, alice, want[:3])
		// Every node of a JID: the other JIDs stay.
		if err := s.PutPush(ctx, alice, puts[0], 0); err != nil {
			t.Fatal(err)
		}
		n, err = s.DeletePush(ctx, alice, "push.example.net", "")
		if err != nil || n != 2 {
			t.Fatalf("DeletePush(every node) = %d, %v; want 2, nil", n, err)
		}
		checkPush(t, s, alice, want[:2])
		// Nothing to remove is not an error.
		n, err = s.DeletePush(ctx, alice, "push.example.net", "")
		if err != nil || n != 0 {
			t.Fatalf("DeletePush of nothing = %d, %v; want 0, nil", n, err)
		}
		checkPush(t, s, "bob@example.com", []storage.PushRegistration{{JID: "push.example.net", Node: "n1"}})
	})

	t.Run("Limit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for i := range 3 {
			if err := s.PutPush(ctx, alice, storage.PushRegistration{JID: "push.example.net", Node: fmt.Sprint(i)}, 3); err != nil {
				t.Fatalf("PutPush %d of 3: %v", i, err)
			}
		}
		err := s.PutPush(ctx, alice, storage.PushRegistration{JID: "push.example.net", Node: "3"}, 3)
		wantErr(t, "PutPush beyond the limit", err, storage.ErrLimit)
		// Replacing at the limit is allowed.
		r := storage.PushRegistration{JID: "push.example.net", Node: "1", Fields: secret}
		if err := s.PutPush(ctx, alice, r, 3); err != nil {
			t.Fatalf("PutPush replacing at the limit: %v", err)
		}
		regs, err := s.PushRegistrations(ctx, alice)
		if err != nil || len(regs) != 3 || !reflect.DeepEqual(regs[1], r) {
			t.Fatalf("after the limit: %+v, %v", regs, err)
		}
	})

	t.Run("ConcurrentLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		stores := handles(t, s, reopen)
		errs := concurrently(8, func(i int) error {
			return stores[i%len(stores)].PutPush(ctx, alice, storage.PushRegistration{JID: "push.example.net", Node: fmt.Sprint(i)}, 2)
		})
		checkLimited(t, "PutPush", errs, 2)
		regs, err := s.PushRegistrations(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(regs) != 2 {
			t.Errorf("%d stored after concurrent PutPush calls; the limit is 2", len(regs))
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, alice, creds(1)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPush(ctx, alice, storage.PushRegistration{JID: "push.example.net", Node: "n1", Fields: secret}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPush(ctx, "bob@example.com", storage.PushRegistration{JID: "push.example.net", Node: "n1"}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, alice); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		checkPush(t, s, alice, nil)
		checkPush(t, s, "bob@example.com", []storage.PushRegistration{{JID: "push.example.net", Node: "n1"}})
	})

	if reopen != nil {
		t.Run("Reopen", func(t *testing.T) {
			s, ctx := open(t), t.Context()
			r := storage.PushRegistration{JID: "push.example.net", Node: "n1", Fields: secret}
			if err := s.PutPush(ctx, alice, r, 0); err != nil {
				t.Fatal(err)
			}
			checkPush(t, reopen(t, s), alice, []storage.PushRegistration{r})
		})
	}
}

func checkPush(t *testing.T, s storage.Store, owner string, want []storage.PushRegistration) {
	t.Helper()
	got, err := s.PushRegistrations(t.Context(), owner)
	if err != nil {
		t.Fatalf("PushRegistrations(%s): %v", owner, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PushRegistrations(%s) =\n  %+v\nwant\n  %+v", owner, got, want)
	}
}
