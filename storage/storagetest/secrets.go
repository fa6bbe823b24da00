package storagetest

import (
	"bytes"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

func runSecrets(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	t.Run("SameEachTime", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		a, err := s.Secret(ctx, "one", 32)
		if err != nil {
			t.Fatalf("Secret: %v", err)
		}
		if len(a) != 32 || bytes.Equal(a, make([]byte, 32)) {
			t.Fatalf("secret of %d bytes: %x", len(a), a)
		}
		b, err := s.Secret(ctx, "one", 16)
		if err != nil {
			t.Fatalf("Secret again: %v", err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("second call gave %x, first %x", b, a)
		}
		c, err := s.Secret(ctx, "two", 32)
		if err != nil {
			t.Fatalf("Secret two: %v", err)
		}
		if bytes.Equal(a, c) {
			t.Fatal("two secrets of different names are equal")
		}
	})

	t.Run("ConcurrentFirstUse", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		stores := handles(t, s, reopen)
		const n = 8
		got := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = stores[i%len(stores)].Secret(ctx, "shared", 32)
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("callers got different secrets: %x and %x", got[i], got[0])
			}
		}
	})
}
