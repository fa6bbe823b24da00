package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

func runAPITokens(t *testing.T, open func(t *testing.T) storage.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	ha, hb := []byte("hash-a-0123456789abcdef012345678"), []byte("hash-b-0123456789abcdef012345678")

	t.Run("CreateLookUpRevoke", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if _, err := s.APITokenByHash(ctx, ha); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("APITokenByHash of an unknown hash: %v, want ErrNotFound", err)
		}
		if err := s.CreateAPIToken(ctx, "billing", ha, now); err != nil {
			t.Fatalf("CreateAPIToken: %v", err)
		}
		if err := s.CreateAPIToken(ctx, "billing", hb, now); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("CreateAPIToken with a taken name: %v, want ErrExists", err)
		}
		if err := s.CreateAPIToken(ctx, "other", ha, now); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("CreateAPIToken with a taken hash: %v, want ErrExists", err)
		}
		got, err := s.APITokenByHash(ctx, ha)
		if err != nil || got.Name != "billing" || !got.Created.Equal(now) || !got.LastUsed.IsZero() {
			t.Fatalf("APITokenByHash = %+v, %v; want billing created %v, never used", got, err, now)
		}
		if _, err := s.APITokenByHash(ctx, hb); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("APITokenByHash of the refused hash: %v, want ErrNotFound", err)
		}
		if err := s.DeleteAPIToken(ctx, "billing"); err != nil {
			t.Fatalf("DeleteAPIToken: %v", err)
		}
		if _, err := s.APITokenByHash(ctx, ha); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("APITokenByHash after revocation: %v, want ErrNotFound", err)
		}
		if err := s.DeleteAPIToken(ctx, "billing"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("DeleteAPIToken twice: %v, want ErrNotFound", err)
		}
		// The name can be used again, with a new token.
		if err := s.CreateAPIToken(ctx, "billing", hb, now); err != nil {
			t.Fatalf("CreateAPIToken after revocation: %v", err)
		}
	})

	t.Run("ListAndTouch", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if list, err := s.ListAPITokens(ctx); err != nil || len(list) != 0 {
			t.Fatalf("ListAPITokens on a new store = %v, %v", list, err)
		}
		if err := s.CreateAPIToken(ctx, "zeta", ha, now); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAPIToken(ctx, "Alpha", hb, now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		used := now.Add(time.Minute)
		if err := s.TouchAPIToken(ctx, "zeta", used); err != nil {
			t.Fatalf("TouchAPIToken: %v", err)
		}
		if err := s.TouchAPIToken(ctx, "nobody", used); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("TouchAPIToken of a missing token: %v, want ErrNotFound", err)
		}
		list, err := s.ListAPITokens(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("ListAPITokens = %+v, %v; want 2", list, err)
		}
		// Byte order: upper case first.
		if list[0].Name != "Alpha" || list[1].Name != "zeta" {
			t.Fatalf("ListAPITokens order: %s, %s; want Alpha, zeta", list[0].Name, list[1].Name)
		}
		if !list[0].Created.Equal(now.Add(time.Second)) || !list[0].LastUsed.IsZero() {
			t.Errorf("Alpha = %+v", list[0])
		}
		if !list[1].LastUsed.Equal(used) {
			t.Errorf("zeta last used %v, want %v", list[1].LastUsed, used)
		}
	})

	// Tokens belong to the server, not to an account: deleting accounts
	// leaves them.
	t.Run("DeleteUserKeepsTokens", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, "billing@example.com", creds(1)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAPIToken(ctx, "billing@example.com", ha, now); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, "billing@example.com"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.APITokenByHash(ctx, ha); err != nil || got.Name != "billing@example.com" {
			t.Fatalf("APITokenByHash after DeleteUser = %+v, %v", got, err)
		}
	})
}
