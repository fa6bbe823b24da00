package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// archiveT0 is the time of the first message the archive cases append;
// whole seconds, so that the cases can say which messages a bound keeps.
var archiveT0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func runArchive(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	const (
		alice = "alice@example.com"
		bob   = "bob@example.com"
		carol = "carol@example.com"
		room  = "team@conference.example.com"
	)

	t.Run("Empty", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, q := range []storage.ArchiveQuery{{}, {Max: 10}, {Max: 10, Last: true}, {With: bob}} {
			page, err := s.QueryArchive(ctx, alice, q)
			if err != nil {
				t.Fatalf("QueryArchive(%+v) of an empty archive: %v", q, err)
			}
			if len(page.Messages) != 0 || !page.Complete {
				t.Errorf("QueryArchive(%+v) of an empty archive = %d messages, complete %v; want none, complete",
					q, len(page.Messages), page.Complete)
			}
		}
		if err := s.DeleteArchive(ctx, alice); err != nil {
			t.Errorf("DeleteArchive of an empty archive: %v", err)
		}
		n, err := s.PruneArchive(ctx, archiveT0, 1)
		if err != nil || n != 0 {
			t.Errorf("PruneArchive of an empty store = %d, %v; want 0, nil", n, err)
		}
	})

	// Every field comes back as it went in: Data byte for byte, Time in UTC
	// to the microsecond, whatever its location and nanoseconds.
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		in := []storage.ArchivedMessage{
			{ID: "a1", Owner: alice, With: bob, Time: time.Date(2024, 3, 1, 17, 30, 0, 123456789, zone),
				Data: []byte("<message xmlns='jabber:client'><body>\x00\xff é \"<&>\"</body></message>")},
			{ID: "a2", Owner: alice, With: "", Time: time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
				Data: nil},
			{ID: "a3", Owner: alice, With: "é@example.com", Time: archiveT0.Add(-time.Nanosecond), Data: []byte{}},
		}
		appendArchive(t, s, in...)
		page := query(t, s, alice, storage.ArchiveQuery{})
		if !page.Complete {
			t.Error("the whole archive is not complete")
		}
		want := make([]storage.ArchivedMessage, len(in))
		for i, m := range in {
			m.Time = m.Time.Truncate(time.Microsecond).UTC()
			if m.Data == nil {
				m.Data = []byte{}
			}
			want[i] = m
		}
		checkMessages(t, page.Messages, want)
		for _, m := range page.Messages {
			if m.Time.Location() != time.UTC {
				t.Errorf("message %s: Time in %v, want UTC", m.ID, m.Time.Location())
			}
		}
	})

	// Paging through a whole archive both ways gives every message exactly
	// once, in order, with Complete only on the page that reaches the end,
	// including when that page is exactly full.
	t.Run("PageThrough", func(t *testing.T) {
		s := open(t)
		const n = 20
		want := seedArchive(t, s, alice, n, func(i int) string { return []string{bob, carol}[i%2] })
		// bob's ids fall between alice's: they must not show.
		for i := range 7 {
			appendArchive(t, s, archived(fmt.Sprintf("alice-%05db", i*3), bob, alice, archiveT0))
		}
		for _, max := range []int{1, 3, 5, 7, 20, 21} {
			t.Run(fmt.Sprintf("Max%d", max), func(t *testing.T) {
				var got []string
				after := ""
				for pages := 0; ; pages++ {
					if pages > n+1 {
						t.Fatalf("forward: no complete page after %d pages", pages)
					}
					page := query(t, s, alice, storage.ArchiveQuery{AfterID: after, Max: max})
					if len(page.Messages) > max {
						t.Fatalf("forward: page of %d messages, Max %d", len(page.Messages), max)
					}
					got = append(got, messageIDs(page.Messages)...)
					if page.Complete {
						if len(got) != n {
							t.Fatalf("forward: complete after %d messages of %d", len(got), n)
						}
						break
					}
					if len(page.Messages) == 0 {
						t.Fatal("forward: empty page not complete")
					}
					after = page.Messages[len(page.Messages)-1].ID
				}
				checkIDs(t, "forward", got, want)

				got = nil
				before := ""
				for pages := 0; ; pages++ {
					if pages > n+1 {
						t.Fatalf("backward: no complete page after %d pages", pages)
					}
					page := query(t, s, alice, storage.ArchiveQuery{BeforeID: before, Max: max, Last: true})
					if len(page.Messages) > max {
						t.Fatalf("backward: page of %d messages, Max %d", len(page.Messages), max)
					}
					ids := messageIDs(page.Messages)
					if !slices.IsSorted(ids) {
						t.Fatalf("backward: page not in archive order: %q", ids)
					}
					got = append(ids, got...)
					if page.Complete {
						if len(got) != n {
							t.Fatalf("backward: complete after %d messages of %d", len(got), n)
						}
						break
					}
					if len(page.Messages) == 0 {
						t.Fatal("backward: empty page not complete")
					}
					before = page.Messages[0].ID
				}
				checkIDs(t, "backward", got, want)
			})
		}
	})

	t.Run("Ends", func(t *testing.T) {
		s := open(t)
		ids := seedArchive(t, s, alice, 10, nil)
		cases := []struct {
			name     string
			q        storage.ArchiveQuery
			want     []string
			complete bool
		}{
			{"FirstPage", storage.ArchiveQuery{Max: 3}, ids[:3], false},
			{"NewestPage", storage.ArchiveQuery{Max: 3, Last: true}, ids[7:], false},
			{"AfterLast", storage.ArchiveQuery{AfterID: ids[9], Max: 3}, nil, true},
			{"BeforeFirst", storage.ArchiveQuery{BeforeID: ids[0], Max: 3, Last: true}, nil, true},
			{"UpToLast", storage.ArchiveQuery{AfterID: ids[6], Max: 3}, ids[7:], true},
			{"DownToFirst", storage.ArchiveQuery{BeforeID: ids[3], Max: 3, Last: true}, ids[:3], true},
			{"NoMax", storage.ArchiveQuery{}, ids, true},
			{"NoMaxLast", storage.ArchiveQuery{Last: true}, ids, true},
			{"NegativeMax", storage.ArchiveQuery{Max: -1, AfterID: ids[4]}, ids[5:], true},
			{"HugeMax", storage.ArchiveQuery{Max: math.MaxInt}, ids, true},
			{"MaxIsAll", storage.ArchiveQuery{Max: 10}, ids, true},
			{"MaxIsAllLast", storage.ArchiveQuery{Max: 10, Last: true}, ids, true},
			// A range between two ids, from either end.
			{"Between", storage.ArchiveQuery{AfterID: ids[2], BeforeID: ids[8], Max: 3}, ids[3:6], false},
			{"BetweenLast", storage.ArchiveQuery{AfterID: ids[2], BeforeID: ids[8], Max: 3, Last: true}, ids[5:8], false},
			{"BetweenAll", storage.ArchiveQuery{AfterID: ids[2], BeforeID: ids[8], Max: 5}, ids[3:8], true},
			// BeforeID without Last: the start of what lies before it.
			{"BeforeForward", storage.ArchiveQuery{BeforeID: ids[5], Max: 2}, ids[:2], false},
			{"BeforeForwardAll", storage.ArchiveQuery{BeforeID: ids[5], Max: 5}, ids[:5], true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				page := query(t, s, alice, c.q)
				checkIDs(t, c.name, messageIDs(page.Messages), c.want)
				if page.Complete != c.complete {
					t.Errorf("Complete = %v, want %v", page.Complete, c.complete)
				}
			})
		}
	})

	// The order is the byte order of ID whatever Time says, and whatever
	// order the messages were appended in.
	t.Run("EqualTimestamps", func(t *testing.T) {
		s := open(t)
		var msgs []storage.ArchivedMessage
		// Appended out of order; the first five share one time, the rest go
		// back in time as their ids grow.
		for i, id := range []string{"m3", "m1", "m4", "m0", "m2", "m5", "m6", "m7"} {
			at := archiveT0
			if i >= 5 {
				at = archiveT0.Add(-time.Duration(i) * time.Hour)
			}
			msgs = append(msgs, archived(id, alice, bob, at))
		}
		appendArchive(t, s, msgs...)
		all := []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"}
		checkIDs(t, "all", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), all)
		page := query(t, s, alice, storage.ArchiveQuery{AfterID: "m1", Max: 2})
		checkIDs(t, "after m1", messageIDs(page.Messages), []string{"m2", "m3"})
		page = query(t, s, alice, storage.ArchiveQuery{BeforeID: "m4", Max: 2, Last: true})
		checkIDs(t, "before m4", messageIDs(page.Messages), []string{"m2", "m3"})
		// Only the five of archiveT0, by id.
		page = query(t, s, alice, storage.ArchiveQuery{Start: archiveT0, End: archiveT0, Max: 3})
		checkIDs(t, "at archiveT0", messageIDs(page.Messages), []string{"m0", "m1", "m2"})
		if page.Complete {
			t.Error("first 3 of 5 equal times: Complete")
		}
		page = query(t, s, alice, storage.ArchiveQuery{Start: archiveT0, End: archiveT0, Max: 3, AfterID: "m2"})
		checkIDs(t, "at archiveT0 after m2", messageIDs(page.Messages), []string{"m3", "m4"})
		if !page.Complete {
			t.Error("last 2 of 5 equal times: not Complete")
		}
	})

	t.Run("Filters", func(t *testing.T) {
		s := open(t)
		// Message i is at archiveT0 + i minutes, with bob when i is even and
		// carol when it is odd.
		ids := seedArchive(t, s, alice, 12, func(i int) string { return []string{bob, carol}[i%2] })
		seedArchive(t, s, carol, 4, func(int) string { return alice })
		at := func(i int) time.Time { return archiveT0.Add(time.Duration(i) * time.Minute) }
		pick := func(is ...int) []string {
			var out []string
			for _, i := range is {
				out = append(out, ids[i])
			}
			return out
		}
		cases := []struct {
			name     string
			q        storage.ArchiveQuery
			want     []string
			complete bool
		}{
			{"With", storage.ArchiveQuery{With: bob}, pick(0, 2, 4, 6, 8, 10), true},
			{"WithNobody", storage.ArchiveQuery{With: "dave@example.com"}, nil, true},
			{"WithPaged", storage.ArchiveQuery{With: carol, AfterID: ids[2], Max: 2}, pick(3, 5), false},
			{"WithPagedEnd", storage.ArchiveQuery{With: carol, AfterID: ids[6], Max: 3}, pick(7, 9, 11), true},
			// AfterID need not match the filter: it is a position.
			{"WithAfterOther", storage.ArchiveQuery{With: bob, AfterID: ids[3], Max: 2}, pick(4, 6), false},
			{"WithLast", storage.ArchiveQuery{With: bob, Max: 2, Last: true}, pick(8, 10), false},
			{"WithLastBefore", storage.ArchiveQuery{With: bob, BeforeID: ids[5], Max: 3, Last: true}, pick(0, 2, 4), true},
			// Both bounds inclusive, to the microsecond.
			{"StartEnd", storage.ArchiveQuery{Start: at(3), End: at(6)}, pick(3, 4, 5, 6), true},
			{"StartEndTight", storage.ArchiveQuery{Start: at(3).Add(time.Microsecond), End: at(6).Add(-time.Microsecond)}, pick(4, 5), true},
			{"StartEndNano", storage.ArchiveQuery{Start: at(3).Add(time.Nanosecond), End: at(6).Add(-time.Nanosecond)}, pick(4, 5), true},
			{"StartOnly", storage.ArchiveQuery{Start: at(9)}, pick(9, 10, 11), true},
			{"EndOnly", storage.ArchiveQuery{End: at(1)}, pick(0, 1), true},
			{"StartAfterEnd", storage.ArchiveQuery{Start: at(6), End: at(3)}, nil, true},
			{"StartEndPaged", storage.ArchiveQuery{Start: at(2), End: at(9), AfterID: ids[4], Max: 3}, pick(5, 6, 7), false},
			{"StartEndLast", storage.ArchiveQuery{Start: at(2), End: at(9), Max: 3, Last: true}, pick(7, 8, 9), false},
			{"StartEndLastBefore", storage.ArchiveQuery{Start: at(2), End: at(9), BeforeID: ids[5], Max: 3, Last: true}, pick(2, 3, 4), true},
			{"StartEndWith", storage.ArchiveQuery{Start: at(2), End: at(9), With: carol, Max: 2}, pick(3, 5), false},
			{"StartInOtherZone", storage.ArchiveQuery{Start: at(10).In(time.FixedZone("x", -7*3600))}, pick(10, 11), true},
			{"IDs", storage.ArchiveQuery{IDs: pick(9, 1, 4)}, pick(1, 4, 9), true},
			{"IDsUnknown", storage.ArchiveQuery{IDs: []string{"nope", ids[2], "zzz"}}, pick(2), true},
			{"IDsOfOtherOwner", storage.ArchiveQuery{IDs: []string{"carol-00000"}}, nil, true},
			{"IDsPaged", storage.ArchiveQuery{IDs: pick(1, 4, 9, 11), Max: 2}, pick(1, 4), false},
			{"IDsPagedAfter", storage.ArchiveQuery{IDs: pick(1, 4, 9, 11), Max: 2, AfterID: ids[4]}, pick(9, 11), true},
			{"IDsLast", storage.ArchiveQuery{IDs: pick(1, 4, 9, 11), Max: 3, Last: true}, pick(4, 9, 11), false},
			{"IDsWith", storage.ArchiveQuery{IDs: pick(1, 4, 9, 11), With: bob}, pick(4), true},
			{"Everything", storage.ArchiveQuery{With: bob, Start: at(1), End: at(10), IDs: pick(0, 2, 3, 6, 8, 10),
				AfterID: ids[2], BeforeID: ids[10], Max: 1}, pick(6), false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				page := query(t, s, alice, c.q)
				checkIDs(t, c.name, messageIDs(page.Messages), c.want)
				if page.Complete != c.complete {
					t.Errorf("Complete = %v, want %v", page.Complete, c.complete)
				}
			})
		}
	})

	// AfterID and BeforeID must be in the owner's archive: one that never
	// was, one of another archive, one pruned or deleted, is item-not-found.
	t.Run("UnknownPosition", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		ids := seedArchive(t, s, alice, 6, nil)
		bobIDs := seedArchive(t, s, bob, 3, nil)
		old := archived("alice-old", alice, bob, archiveT0.Add(-24*time.Hour))
		appendArchive(t, s, old)
		if n, err := s.PruneArchive(ctx, archiveT0.Add(-time.Hour), 0); err != nil || n != 1 {
			t.Fatalf("PruneArchive = %d, %v; want 1, nil", n, err)
		}
		for _, c := range []struct {
			name string
			id   string
		}{
			{"Never", "alice-9999"},
			{"BetweenTwo", ids[2] + "x"},
			{"OtherOwner", bobIDs[1]},
			{"Pruned", old.ID},
		} {
			t.Run(c.name, func(t *testing.T) {
				for _, q := range []storage.ArchiveQuery{
					{AfterID: c.id, Max: 5},
					{BeforeID: c.id, Max: 5, Last: true},
					{AfterID: ids[0], BeforeID: c.id},
					{AfterID: c.id, BeforeID: ids[5]},
				} {
					_, err := s.QueryArchive(ctx, alice, q)
					wantErr(t, fmt.Sprintf("QueryArchive(%+v)", q), err, storage.ErrNotFound)
				}
			})
		}
		t.Run("Deleted", func(t *testing.T) {
			if err := s.DeleteArchive(ctx, alice); err != nil {
				t.Fatalf("DeleteArchive: %v", err)
			}
			_, err := s.QueryArchive(ctx, alice, storage.ArchiveQuery{AfterID: ids[3], Max: 5})
			wantErr(t, "QueryArchive after a deleted id", err, storage.ErrNotFound)
			// bob's archive is still there, and so are his ids.
			page := query(t, s, bob, storage.ArchiveQuery{AfterID: bobIDs[0]})
			checkIDs(t, "bob after his first", messageIDs(page.Messages), bobIDs[1:])
		})
	})

	// A batch is stored whole or not at all.
	t.Run("Duplicate", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		first := archived("m1", alice, bob, archiveT0)
		appendArchive(t, s, first)
		for _, c := range []struct {
			name  string
			batch []storage.ArchivedMessage
		}{
			{"Again", []storage.ArchivedMessage{first}},
			{"LastOfBatch", []storage.ArchivedMessage{archived("m0", alice, bob, archiveT0), archived("m2", alice, bob, archiveT0), first}},
			{"FirstOfBatch", []storage.ArchivedMessage{first, archived("m3", alice, bob, archiveT0)}},
			{"WithinBatch", []storage.ArchivedMessage{archived("m4", alice, bob, archiveT0), archived("m4", alice, carol, archiveT0)}},
			// An id is unique in the whole store, not per archive.
			{"OtherOwner", []storage.ArchivedMessage{archived("m5", bob, alice, archiveT0), archived("m1", bob, alice, archiveT0)}},
		} {
			t.Run(c.name, func(t *testing.T) {
				err := s.AppendArchive(ctx, c.batch...)
				wantErr(t, "AppendArchive", err, storage.ErrExists)
				checkIDs(t, "alice", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), []string{"m1"})
				checkIDs(t, "bob", messageIDs(query(t, s, bob, storage.ArchiveQuery{}).Messages), nil)
			})
		}
		got := query(t, s, alice, storage.ArchiveQuery{}).Messages
		checkMessages(t, got, []storage.ArchivedMessage{first})
		// The ids of the failed batches are free.
		appendArchive(t, s, archived("m0", alice, bob, archiveT0), archived("m4", alice, bob, archiveT0))
		checkIDs(t, "alice after", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), []string{"m0", "m1", "m4"})
		if err := s.AppendArchive(ctx); err != nil {
			t.Errorf("AppendArchive of nothing: %v", err)
		}
	})

	t.Run("PruneByAge", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		// archiveT0 + i minutes.
		a := seedArchive(t, s, alice, 10, nil)
		b := seedArchive(t, s, bob, 4, nil)
		n, err := s.PruneArchive(ctx, archiveT0.Add(3*time.Minute), 0)
		if err != nil {
			t.Fatalf("PruneArchive: %v", err)
		}
		if n != 3+3 {
			t.Errorf("PruneArchive removed %d, want 6", n)
		}
		// Older than before, not at it.
		checkIDs(t, "alice", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), a[3:])
		checkIDs(t, "bob", messageIDs(query(t, s, bob, storage.ArchiveQuery{}).Messages), b[3:])
		// A nanosecond after a message's time removes it.
		n, err = s.PruneArchive(ctx, archiveT0.Add(3*time.Minute+time.Nanosecond), 0)
		if err != nil || n != 2 {
			t.Errorf("PruneArchive just after a message = %d, %v; want 2, nil", n, err)
		}
		n, err = s.PruneArchive(ctx, time.Time{}, 0)
		if err != nil || n != 0 {
			t.Errorf("PruneArchive(zero, 0) = %d, %v; want 0, nil", n, err)
		}
		checkIDs(t, "alice at last", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), a[4:])
	})

	t.Run("PruneByCount", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		a := seedArchive(t, s, alice, 10, nil)
		b := seedArchive(t, s, bob, 3, nil)
		c := seedArchive(t, s, carol, 6, nil)
		r := seedArchive(t, s, room, 5, nil)
		n, err := s.PruneArchive(ctx, time.Time{}, 5)
		if err != nil {
			t.Fatalf("PruneArchive: %v", err)
		}
		if n != 5+1 {
			t.Errorf("PruneArchive removed %d, want 6", n)
		}
		checkIDs(t, "alice", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), a[5:])
		checkIDs(t, "bob", messageIDs(query(t, s, bob, storage.ArchiveQuery{}).Messages), b)
		checkIDs(t, "carol", messageIDs(query(t, s, carol, storage.ArchiveQuery{}).Messages), c[1:])
		checkIDs(t, "room", messageIDs(query(t, s, room, storage.ArchiveQuery{}).Messages), r)
		n, err = s.PruneArchive(ctx, time.Time{}, 5)
		if err != nil || n != 0 {
			t.Errorf("second PruneArchive = %d, %v; want 0, nil", n, err)
		}
		// Both at once: the age first, then what is left over the count.
		n, err = s.PruneArchive(ctx, archiveT0.Add(2*time.Minute), 2)
		if err != nil {
			t.Fatalf("PruneArchive by age and count: %v", err)
		}
		// By age: bob 2 (b0, b1), carol 1 (c1), room 2 (r0, r1); then over
		// 2: alice 3, carol 2, room 1.
		if n != 2+1+2+3+2+1 {
			t.Errorf("PruneArchive by age and count removed %d, want 11", n)
		}
		checkIDs(t, "alice", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), a[8:])
		checkIDs(t, "bob", messageIDs(query(t, s, bob, storage.ArchiveQuery{}).Messages), b[2:])
		checkIDs(t, "carol", messageIDs(query(t, s, carol, storage.ArchiveQuery{}).Messages), c[4:])
		checkIDs(t, "room", messageIDs(query(t, s, room, storage.ArchiveQuery{}).Messages), r[3:])
	})

	// More than one chunk of a backend that deletes in chunks.
	t.Run("PruneMany", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n = 12000
		ids := seedArchive(t, s, alice, n, nil)
		removed, err := s.PruneArchive(ctx, time.Time{}, 100)
		if err != nil || removed != n-100 {
			t.Fatalf("PruneArchive = %d, %v; want %d, nil", removed, err, n-100)
		}
		checkIDs(t, "alice", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), ids[n-100:])
		if err := s.DeleteArchive(ctx, alice); err != nil {
			t.Fatalf("DeleteArchive: %v", err)
		}
		checkIDs(t, "alice deleted", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), nil)
	})

	t.Run("Delete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		seedArchive(t, s, alice, 5, nil)
		b := seedArchive(t, s, bob, 5, nil)
		if err := s.DeleteArchive(ctx, alice); err != nil {
			t.Fatalf("DeleteArchive: %v", err)
		}
		checkIDs(t, "alice", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), nil)
		checkIDs(t, "bob", messageIDs(query(t, s, bob, storage.ArchiveQuery{}).Messages), b)
		// The archive starts again, with new ids.
		appendArchive(t, s, archived("new", alice, bob, archiveT0))
		checkIDs(t, "alice again", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), []string{"new"})
	})

	t.Run("Prefs", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		_, err := s.ArchivePrefs(ctx, alice)
		wantErr(t, "ArchivePrefs never set", err, storage.ErrNotFound)
		for _, p := range []storage.ArchivePrefs{
			{Default: "roster", Always: []string{"a@example.com", "b@example.com"}, Never: []string{"z@example.com"}},
			{Default: "always"},
			{Default: "never", Always: []string{"é@example.com"}, Never: []string{"x@example.com", "c@example.com", "x@example.com"}},
		} {
			if err := s.SetArchivePrefs(ctx, alice, p); err != nil {
				t.Fatalf("SetArchivePrefs(%+v): %v", p, err)
			}
			got, err := s.ArchivePrefs(ctx, alice)
			if err != nil {
				t.Fatalf("ArchivePrefs: %v", err)
			}
			checkPrefs(t, got, p.Normal())
		}
		if _, err := s.ArchivePrefs(ctx, bob); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ArchivePrefs(bob) after setting alice's: %v, want ErrNotFound", err)
		}
		if err := s.SetArchivePrefs(ctx, bob, storage.ArchivePrefs{Default: "sometimes"}); err == nil {
			t.Error("SetArchivePrefs with default \"sometimes\" succeeded")
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, jid := range []string{alice, bob} {
			if err := s.CreateUser(ctx, jid, creds(1)); err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			seedArchive(t, s, jid, 3, nil)
			if err := s.SetArchivePrefs(ctx, jid, storage.ArchivePrefs{Default: "roster", Never: []string{carol}}); err != nil {
				t.Fatalf("SetArchivePrefs: %v", err)
			}
		}
		if err := s.DeleteUser(ctx, alice); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		checkIDs(t, "alice", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), nil)
		_, err := s.ArchivePrefs(ctx, alice)
		wantErr(t, "ArchivePrefs after DeleteUser", err, storage.ErrNotFound)
		if got := query(t, s, bob, storage.ArchiveQuery{}).Messages; len(got) != 3 {
			t.Errorf("bob's archive has %d messages after alice's DeleteUser, want 3", len(got))
		}
		if _, err := s.ArchivePrefs(ctx, bob); err != nil {
			t.Errorf("bob's prefs after alice's DeleteUser: %v", err)
		}
	})

	t.Run("DeleteRoom", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const other = "other@conference.example.com"
		for _, jid := range []string{room, other} {
			if err := s.SaveRoom(ctx, storage.Room{JID: jid, Created: archiveT0}); err != nil {
				t.Fatalf("SaveRoom: %v", err)
			}
			seedArchive(t, s, jid, 3, nil)
		}
		if err := s.DeleteRoom(ctx, room); err != nil {
			t.Fatalf("DeleteRoom: %v", err)
		}
		checkIDs(t, "room", messageIDs(query(t, s, room, storage.ArchiveQuery{}).Messages), nil)
		if got := query(t, s, other, storage.ArchiveQuery{}).Messages; len(got) != 3 {
			t.Errorf("the other room's archive has %d messages, want 3", len(got))
		}
		// A room that is not stored is not found, and its archive stays.
		seedArchive(t, s, "gone@conference.example.com", 2, nil)
		wantErr(t, "DeleteRoom of an unsaved room", s.DeleteRoom(ctx, "gone@conference.example.com"), storage.ErrNotFound)
		if got := query(t, s, "gone@conference.example.com", storage.ArchiveQuery{}).Messages; len(got) != 2 {
			t.Errorf("an unsaved room's archive has %d messages after a failed DeleteRoom, want 2", len(got))
		}
	})

	// What one store appends, another opened on the same database reads.
	t.Run("Reopen", func(t *testing.T) {
		if reopen == nil {
			t.Skip("the backend gave no reopen")
		}
		s, ctx := open(t), t.Context()
		want := []storage.ArchivedMessage{
			archived("r1", alice, bob, archiveT0.Add(time.Microsecond)),
			archived("r2", alice, "", archiveT0.Add(time.Hour)),
		}
		appendArchive(t, s, want...)
		prefs := storage.ArchivePrefs{Default: "roster", Always: []string{bob}, Never: []string{carol}}
		if err := s.SetArchivePrefs(ctx, alice, prefs); err != nil {
			t.Fatalf("SetArchivePrefs: %v", err)
		}
		other := reopen(t, s)
		page, err := other.QueryArchive(ctx, alice, storage.ArchiveQuery{AfterID: "r1"})
		if err != nil {
			t.Fatalf("QueryArchive from the reopened store: %v", err)
		}
		checkMessages(t, page.Messages, want[1:])
		checkMessages(t, query(t, other, alice, storage.ArchiveQuery{}).Messages, want)
		got, err := other.ArchivePrefs(ctx, alice)
		if err != nil {
			t.Fatalf("ArchivePrefs from the reopened store: %v", err)
		}
		checkPrefs(t, got, prefs)
		// And the reopened store appends where the first left off.
		appendArchive(t, other, archived("r3", alice, bob, archiveT0.Add(2*time.Hour)))
		checkIDs(t, "first store", messageIDs(query(t, s, alice, storage.ArchiveQuery{}).Messages), []string{"r1", "r2", "r3"})
	})
}

// archived returns a message whose Data names its id.
func archived(id, owner, with string, at time.Time) storage.ArchivedMessage {
	return storage.ArchivedMessage{ID: id, Owner: owner, With: with, Time: at,
		Data: fmt.Appendf(nil, "<message xmlns='jabber:client' id='%s'><body>\x00é</body></message>", id)}
}

// seedArchive appends n messages to owner's archive, one batch, and returns
// their ids in order: "<local>-0000" onwards, message i at archiveT0 + i
// minutes, with with(i) (or "" when with is nil). Another owner's ids
// interleave with these in byte order only if their local parts compare so.
func seedArchive(t *testing.T, s storage.Store, owner string, n int, with func(int) string) []string {
	t.Helper()
	local, _, _ := strings.Cut(owner, "@")
	msgs := make([]storage.ArchivedMessage, n)
	ids := make([]string, n)
	for i := range n {
		w := ""
		if with != nil {
			w = with(i)
		}
		ids[i] = fmt.Sprintf("%s-%05d", local, i)
		msgs[i] = archived(ids[i], owner, w, archiveT0.Add(time.Duration(i)*time.Minute))
	}
	appendArchive(t, s, msgs...)
	return ids
}

func appendArchive(t *testing.T, s storage.Store, msgs ...storage.ArchivedMessage) {
	t.Helper()
	if err := s.AppendArchive(t.Context(), msgs...); err != nil {
		t.Fatalf("AppendArchive: %v", err)
	}
}

func query(t *testing.T, s storage.Store, owner string, q storage.ArchiveQuery) storage.ArchivePage {
	t.Helper()
	page, err := s.QueryArchive(t.Context(), owner, q)
	if err != nil {
		t.Fatalf("QueryArchive(%s, %+v): %v", owner, q, err)
	}
	return page
}

func messageIDs(msgs []storage.ArchivedMessage) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func checkIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: ids\n  %q\nwant\n  %q", what, got, want)
	}
}

func checkMessages(t *testing.T, got, want []storage.ArchivedMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages %q, want %d %q", len(got), messageIDs(got), len(want), messageIDs(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Owner != w.Owner || g.With != w.With || !g.Time.Equal(w.Time) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("message %d =\n  %+v\nwant\n  %+v", i, g, w)
		}
	}
}

func checkPrefs(t *testing.T, got, want storage.ArchivePrefs) {
	t.Helper()
	if got.Default != want.Default || !slices.Equal(got.Always, want.Always) || !slices.Equal(got.Never, want.Never) {
		t.Errorf("prefs = %+v, want %+v", got, want)
	}
}
