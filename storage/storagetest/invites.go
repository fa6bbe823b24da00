package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

func runInvites(t *testing.T, open func(t *testing.T) storage.Store) {
	now := time.Now()
	a, b, c := []byte("hash-a-0123456789abcdef01234567"), []byte("hash-b-0123456789abcdef01234567"), []byte("hash-c-0123456789abcdef01234567")

	t.Run("SingleUse", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.UseInvite(ctx, a, now); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("UseInvite of an unknown invitation: %v, want ErrNotFound", err)
		}
		if err := s.CreateInvite(ctx, a, now.Add(time.Hour)); err != nil {
			t.Fatalf("CreateInvite: %v", err)
		}
		if err := s.CreateInvite(ctx, a, now.Add(time.Hour)); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("CreateInvite twice: %v, want ErrExists", err)
		}
		if err := s.UseInvite(ctx, b, now); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("UseInvite of another hash: %v, want ErrNotFound", err)
		}
		if err := s.UseInvite(ctx, a, now); err != nil {
			t.Fatalf("UseInvite: %v", err)
		}
		if err := s.UseInvite(ctx, a, now); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("UseInvite a second time: %v, want ErrNotFound", err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateInvite(ctx, a, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateInvite(ctx, b, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		// Expired at its expiry, and after.
		if err := s.UseInvite(ctx, a, now.Add(time.Minute)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("UseInvite at expiry: %v, want ErrNotFound", err)
		}
		n, err := s.DeleteExpiredInvites(ctx, now.Add(2*time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("DeleteExpiredInvites = %d, %v; want 1, nil", n, err)
		}
		if err := s.UseInvite(ctx, b, now.Add(2*time.Minute)); err != nil {
			t.Fatalf("UseInvite of the one not expired: %v", err)
		}
	})

	t.Run("ConcurrentUse", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateInvite(ctx, c, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		errs := concurrently(8, func(int) error { return s.UseInvite(ctx, c, now) })
		checkWinners(t, "UseInvite", errs, 1, storage.ErrNotFound)
	})
}
