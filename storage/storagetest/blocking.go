package storagetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

func runBlocking(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	const alice, bob = "alice@example.com", "bob@example.com"
	// Every form XEP-0191 allows: bare, full, domain, domain/resource; the
	// capital sorts first in byte order.
	forms := []string{"mallory@evil.example", "eve@example.org/phone", "spam.example", "spam.example/bot", "Zed@example.net"}

	t.Run("BlockListUnblock", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		checkBlocks(t, s, alice, nil)
		n, err := s.Block(ctx, alice, forms, 0)
		if err != nil || n != len(forms) {
			t.Fatalf("Block(%q) = %d, %v; want %d, nil", forms, n, err, len(forms))
		}
		// Another account's list is its own.
		if _, err := s.Block(ctx, bob, []string{"mallory@evil.example"}, 0); err != nil {
			t.Fatalf("Block for bob: %v", err)
		}
		want := slices.Clone(forms)
		slices.Sort(want)
		checkBlocks(t, s, alice, want)

		// Blocking again what is blocked adds nothing, and is no error.
		n, err = s.Block(ctx, alice, []string{"spam.example", "new@example.org"}, 0)
		if err != nil || n != 1 {
			t.Fatalf("Block of one old and one new = %d, %v; want 1, nil", n, err)
		}
		want = append(want, "new@example.org")
		slices.Sort(want)
		checkBlocks(t, s, alice, want)

		// Unblocking several, one of them not blocked.
		n, err = s.Unblock(ctx, alice, []string{"spam.example", "eve@example.org/phone", "nobody@example.org"})
		if err != nil || n != 2 {
			t.Fatalf("Unblock = %d, %v; want 2, nil", n, err)
		}
		want = slices.DeleteFunc(want, func(j string) bool { return j == "spam.example" || j == "eve@example.org/phone" })
		checkBlocks(t, s, alice, want)
		// The domain went, its resource stayed: items are exact strings.
		if !slices.Contains(want, "spam.example/bot") {
			t.Fatal("test bug: spam.example/bot should be left")
		}

		n, err = s.UnblockAll(ctx, alice)
		if err != nil || n != len(want) {
			t.Fatalf("UnblockAll = %d, %v; want %d, nil", n, err, len(want))
		}
		checkBlocks(t, s, alice, nil)
		n, err = s.UnblockAll(ctx, alice)
		if err != nil || n != 0 {
			t.Fatalf("UnblockAll of an empty list = %d, %v; want 0, nil", n, err)
		}
		checkBlocks(t, s, bob, []string{"mallory@evil.example"})
	})

	t.Run("Limit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if _, err := s.Block(ctx, alice, []string{"a@example.org", "b@example.org"}, 3); err != nil {
			t.Fatalf("Block 2 of 3: %v", err)
		}
		// Two more would make four: none of them is added.
		_, err := s.Block(ctx, alice, []string{"c@example.org", "d@example.org"}, 3)
		wantErr(t, "Block beyond the limit", err, storage.ErrLimit)
		checkBlocks(t, s, alice, []string{"a@example.org", "b@example.org"})
		// What is already blocked does not count again.
		if n, err := s.Block(ctx, alice, []string{"a@example.org", "c@example.org"}, 3); err != nil || n != 1 {
			t.Fatalf("Block up to the limit = %d, %v; want 1, nil", n, err)
		}
		if n, err := s.Block(ctx, alice, []string{"b@example.org"}, 3); err != nil || n != 0 {
			t.Fatalf("Block of a blocked JID at the limit = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("ConcurrentLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		stores := handles(t, s, reopen)
		errs := concurrently(8, func(i int) error {
			_, err := stores[i%len(stores)].Block(ctx, alice, []string{fmt.Sprintf("u%d@example.org", i)}, 3)
			return err
		})
		checkLimited(t, "Block", errs, 3)
		got, err := s.BlockList(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Errorf("%d stored after concurrent Block calls; the limit is 3", len(got))
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, alice, creds(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Block(ctx, alice, forms, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Block(ctx, bob, forms[:1], 0); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, alice); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		checkBlocks(t, s, alice, nil)
		checkBlocks(t, s, bob, forms[:1])
	})

	if reopen != nil {
		t.Run("Reopen", func(t *testing.T) {
			s, ctx := open(t), t.Context()
			if _, err := s.Block(ctx, alice, forms[:2], 0); err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(forms[:2])
			slices.Sort(want)
			checkBlocks(t, reopen(t, s), alice, want)
		})
	}
}

// checkBlocks checks owner's block list; nil wants an empty one, which
// must be returned as an empty list, not an error.
func checkBlocks(t *testing.T, s storage.Store, owner string, want []string) {
	t.Helper()
	got, err := s.BlockList(t.Context(), owner)
	if err != nil {
		t.Fatalf("BlockList(%s): %v", owner, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("BlockList(%s) = %q, want %q", owner, got, want)
	}
}
