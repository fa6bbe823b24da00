package storagetest

import (
	"bytes"
	"errors"
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
			if err := s.StoreOffline(ctx, alice, data, storage.OfflineLimits{}); err != nil {
				t.Fatalf("StoreOffline %d: %v", i, err)
			}
			want = append(want, data)
		}
		if err := s.StoreOffline(ctx, bob, []byte("<message>for bob</message>"), storage.OfflineLimits{}); err != nil {
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
		if err := s.StoreOffline(ctx, alice, []byte("<message>later</message>"), storage.OfflineLimits{}); err != nil {
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
		lim := storage.OfflineLimits{PerAccount: max}
		var want [][]byte
		for i := range max {
			data := fmt.Appendf(nil, "<message id='%d'/>", i)
			if err := s.StoreOffline(ctx, alice, data, lim); err != nil {
				t.Fatalf("StoreOffline %d below the limit: %v", i, err)
			}
			want = append(want, data)
		}
		err := s.StoreOffline(ctx, alice, []byte("<message id='over'/>"), lim)
		wantErr(t, "StoreOffline over the limit", err, storage.ErrLimit)
		if errors.Is(err, storage.ErrTotalLimit) {
			t.Errorf("a full queue is reported as the server-wide limit: %v", err)
		}
		msgs := checkQueue(t, s, alice, want) // nothing stored
		// The limit is per account, and 0 means none.
		if err := s.StoreOffline(ctx, bob, []byte("<message/>"), lim); err != nil {
			t.Errorf("bob's queue counts alice's messages: %v", err)
		}
		if err := s.StoreOffline(ctx, alice, []byte("<message id='unlimited'/>"), storage.OfflineLimits{}); err != nil {
			t.Errorf("StoreOffline with max 0: %v", err)
		}
		// Delivering makes room.
		if err := s.DeleteOffline(ctx, alice, msgs[max-1].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreOffline(ctx, alice, []byte("<message id='after'/>"), lim); err != nil {
			t.Errorf("StoreOffline after DeleteOffline: %v", err)
		}
	})

	t.Run("ConcurrentLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n, max = 20, 10
		errs := concurrently(n, func(i int) error {
			return s.StoreOffline(ctx, alice, fmt.Appendf(nil, "<message id='%d'/>", i), storage.OfflineLimits{PerAccount: max})
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

	// OfflineUsage counts every message however it goes: delivered
	// (DeleteOffline) or taken with its account (DeleteUser).
	t.Run("Usage", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		checkUsage(t, s, storage.OfflineUsage{})
		if err := s.CreateUser(ctx, bob, creds(1)); err != nil {
			t.Fatal(err)
		}
		sizes := map[string][]int{alice: {10, 200, 3000}, bob: {1, 20}}
		var msgs, total int64
		for _, owner := range []string{alice, bob} {
			for _, n := range sizes[owner] {
				if err := s.StoreOffline(ctx, owner, bytes.Repeat([]byte{'x'}, n), storage.OfflineLimits{}); err != nil {
					t.Fatal(err)
				}
				msgs++
				total += int64(n)
			}
		}
		checkUsage(t, s, storage.OfflineUsage{Messages: msgs, Bytes: total})
		queue, err := s.OfflineMessages(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteOffline(ctx, alice, queue[1].ID); err != nil {
			t.Fatal(err)
		}
		checkUsage(t, s, storage.OfflineUsage{Messages: msgs - 2, Bytes: total - 210})
		if err := s.DeleteUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		checkUsage(t, s, storage.OfflineUsage{Messages: 1, Bytes: 3000})
	})

	// The total limit counts every account's messages; a message that
	// exactly fills it is stored, one byte more is not; delivering makes room.
	t.Run("TotalLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		msg := func(i int) []byte { return fmt.Appendf(nil, "<message id='%03d'/>", i) } // 19 bytes
		size := int64(len(msg(0)))
		lim := storage.OfflineLimits{PerAccount: 2, TotalBytes: 3 * size}
		owners := []string{alice, bob, "carol@example.com", "dave@example.com"}
		for i, owner := range owners[:3] {
			if err := s.StoreOffline(ctx, owner, msg(i), lim); err != nil {
				t.Fatalf("StoreOffline %d up to the total: %v", i, err)
			}
		}
		checkUsage(t, s, storage.OfflineUsage{Messages: 3, Bytes: 3 * size})
		err := s.StoreOffline(ctx, owners[3], []byte("x"), lim)
		wantErr(t, "StoreOffline one byte over the total", err, storage.ErrTotalLimit)
		wantErr(t, "StoreOffline one byte over the total", err, storage.ErrLimit)
		checkQueue(t, s, owners[3], nil)
		checkUsage(t, s, storage.OfflineUsage{Messages: 3, Bytes: 3 * size})
		// A queue at its own limit says so first.
		lim1 := storage.OfflineLimits{PerAccount: 1, TotalBytes: lim.TotalBytes}
		err = s.StoreOffline(ctx, alice, msg(9), lim1)
		wantErr(t, "StoreOffline to a full queue", err, storage.ErrLimit)
		if errors.Is(err, storage.ErrTotalLimit) {
			t.Errorf("StoreOffline to a full queue: err = %v, want the per-account limit", err)
		}
		// No total limit, no refusal.
		if err := s.StoreOffline(ctx, owners[3], msg(3), storage.OfflineLimits{}); err != nil {
			t.Fatalf("StoreOffline without a total limit: %v", err)
		}
		// A message larger than the whole limit never fits.
		queue := checkQueue(t, s, owners[3], [][]byte{msg(3)})
		if err := s.DeleteOffline(ctx, owners[3], queue[0].ID); err != nil {
			t.Fatal(err)
		}
		err = s.StoreOffline(ctx, owners[3], bytes.Repeat([]byte{'x'}, int(lim.TotalBytes)+1), storage.OfflineLimits{TotalBytes: lim.TotalBytes})
		wantErr(t, "StoreOffline of a message larger than the total", err, storage.ErrTotalLimit)
		// Delivering alice's message makes room for dave's.
		queue = checkQueue(t, s, alice, [][]byte{msg(0)})
		if err := s.DeleteOffline(ctx, alice, queue[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreOffline(ctx, owners[3], msg(4), lim); err != nil {
			t.Fatalf("StoreOffline after DeleteOffline made room: %v", err)
		}
		checkQueue(t, s, owners[3], [][]byte{msg(4)})
		checkUsage(t, s, storage.OfflineUsage{Messages: 3, Bytes: 3 * size})
	})

	// Concurrent stores for different accounts (as from several nodes) fill
	// the total exactly.
	t.Run("ConcurrentTotalLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n, fit = 20, 10
		msg := func(i int) []byte { return fmt.Appendf(nil, "<message id='%03d'/>", i) }
		size := int64(len(msg(0)))
		lim := storage.OfflineLimits{TotalBytes: fit * size}
		errs := concurrently(n, func(i int) error {
			return s.StoreOffline(ctx, fmt.Sprintf("u%d@example.com", i), msg(i), lim)
		})
		checkLimited(t, "StoreOffline", errs, fit)
		for i, err := range errs {
			if err != nil && !errors.Is(err, storage.ErrTotalLimit) {
				t.Errorf("goroutine %d: %v, want nil or ErrTotalLimit", i, err)
			}
		}
		checkUsage(t, s, storage.OfflineUsage{Messages: fit, Bytes: fit * size})
	})
}

// checkUsage checks what OfflineUsage reports.
func checkUsage(t *testing.T, s storage.Store, want storage.OfflineUsage) {
	t.Helper()
	got, err := s.OfflineUsage(t.Context())
	if err != nil {
		t.Fatalf("OfflineUsage: %v", err)
	}
	if got != want {
		t.Errorf("OfflineUsage = %+v, want %+v", got, want)
	}
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
