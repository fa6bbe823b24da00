package storagetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

func runOffline(t *testing.T, open func(t *testing.T) storage.Store) {
	const alice, bob = "alice@example.com", "bob@example.com"

	t.Run("Empty", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		msgs, err := s.OfflineMessages(ctx, alice)
		if err != nil {
			t.Fatalf("OfflineMessages of an empty queue: %v", err)
		}
		if len(msgs) != 0 {
			t.Fatalf("OfflineMessages = %d messages, want none", len(msgs))
		}
		if err := s.DeleteOffline(ctx, alice, 1<<62); err != nil {
			t.Fatalf("DeleteOffline on an empty queue: %v", err)
		}
	})

	// Messages come back in arrival order, byte for byte, with increasing
	// IDs; deleting up to an ID removes exactly those; IDs keep increasing
	// after the newest is deleted.
	t.Run("OrderAndDelete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		var want [][]byte
		for i := range 5 {
			data := fmt.Appendf(nil, "<message id='%d'><body>\x00\xff é</body></message>", i)
			if err := s.StoreOffline(ctx, alice, data, 0); err != nil {
				t.Fatalf("StoreOffline %d: %v", i, err)
			}
			want = append(want, data)
		}
		if err := s.StoreOffline(ctx, bob, []byte("<message>for bob</message>"), 0); err != nil {
			t.Fatal(err)
		}
		msgs := checkQueue(t, s, alice, want)

		if err := s.DeleteOffline(ctx, alice, msgs[0].ID-1); err != nil {
			t.Fatalf("DeleteOffline below the first ID: %v", err)
		}
		checkQueue(t, s, alice, want)
		if err := s.DeleteOffline(ctx, alice, msgs[2].ID); err != nil {
			t.Fatalf("DeleteOffline: %v", err)
		}
		checkQueue(t, s, alice, want[3:])
		checkQueue(t, s, bob, [][]byte{[]byte("<message>for bob</message>")})

		if err := s.DeleteOffline(ctx, alice, msgs[4].ID); err != nil {
			t.Fatalf("DeleteOffline of all: %v", err)
		}
		checkQueue(t, s, alice, nil)
		if err := s.StoreOffline(ctx, alice, []byte("<message>later</message>"), 0); err != nil {
			t.Fatal(err)
		}
		later := checkQueue(t, s, alice, [][]byte{[]byte("<message>later</message>")})
		if later[0].ID <= msgs[4].ID {
			t.Errorf("a message stored after deleting ID %d got ID %d, want a larger one", msgs[4].ID, later[0].ID)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const max = 3
		var want [][]byte
		for i := range max {
			data := fmt.Appendf(nil, "<message id='%d'/>", i)
			if err := s.StoreOffline(ctx, alice, data, max); err != nil {
				t.Fatalf("StoreOffline %d below the limit: %v", i, err)
			}
			want = append(want, data)
		}
		err := s.StoreOffline(ctx, alice, []byte("<message id='over'/>"), max)
		wantErr(t, "StoreOffline over the limit", err, storage.ErrLimit)
		msgs := checkQueue(t, s, alice, want) // nothing stored
		// The limit is per account, and 0 means none.
		if err := s.StoreOffline(ctx, bob, []byte("<message/>"), max); err != nil {
			t.Errorf("bob's queue counts alice's messages: %v", err)
		}
		if err := s.StoreOffline(ctx, alice, []byte("<message id='unlimited'/>"), 0); err != nil {
			t.Errorf("StoreOffline with max 0: %v", err)
		}
		// Delivering makes room.
		if err := s.DeleteOffline(ctx, alice, msgs[max-1].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreOffline(ctx, alice, []byte("<message id='after'/>"), max); err != nil {
			t.Errorf("StoreOffline after DeleteOffline: %v", err)
		}
	})

	t.Run("ConcurrentLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n, max = 20, 10
		errs := concurrently(n, func(i int) error {
			return s.StoreOffline(ctx, alice, fmt.Appendf(nil, "<message id='%d'/>", i), max)
		})
		checkLimited(t, "StoreOffline", errs, max)
		msgs, err := s.OfflineMessages(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != max {
			t.Errorf("queue holds %d messages, want %d", len(msgs), max)
		}
		for i := 1; i < len(msgs); i++ {
			if msgs[i].ID <= msgs[i-1].ID {
				t.Errorf("IDs out of order: %d after %d", msgs[i].ID, msgs[i-1].ID)
			}
		}
	})
}

// checkQueue checks that owner's queue holds want, in order, with increasing
// IDs, and returns it.
func checkQueue(t *testing.T, s storage.Store, owner string, want [][]byte) []storage.OfflineMessage {
	t.Helper()
	msgs, err := s.OfflineMessages(t.Context(), owner)
	if err != nil {
		t.Fatalf("OfflineMessages(%s): %v", owner, err)
	}
	if len(msgs) != len(want) {
		t.Fatalf("OfflineMessages(%s) = %d messages, want %d", owner, len(msgs), len(want))
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Data, want[i]) {
			t.Errorf("message %d = %q, want %q", i, m.Data, want[i])
		}
		if i > 0 && m.ID <= msgs[i-1].ID {
			t.Errorf("message %d has ID %d after %d, want increasing IDs", i, m.ID, msgs[i-1].ID)
		}
	}
	return msgs
}
