package storagetest

import (
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// Sizes of the archive BenchArchive seeds.
const (
	benchMessages = 1_000_000 // in the archive the queries read
	benchOthers   = 4         // other archives, interleaved with it
	benchEvery    = 10        // one message in benchEvery+1 goes to another archive
	benchContacts = 20        // With cycles through this many
	benchBatch    = 1000      // messages per AppendArchive
	benchPage     = 50        // Max of every query
	benchDeep     = 500_000   // the deep pages start after message benchDeep-1
	benchWindow   = 10_000    // messages in the Start/End window
)

var (
	benchOwner = "alice@example.com"
	benchT0    = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	// benchIDs is base32hex without padding: 10 bytes make 16 characters
	// whose byte order is the order of the bytes.
	benchIDs = base32.HexEncoding.WithPadding(base32.NoPadding)
)

// benchID returns an archive id of the kind the MAM module makes: a
// microsecond time and a counter, 16 characters that increase in byte
// order.
func benchID(at time.Time, counter uint16) string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMicro()))
	binary.BigEndian.PutUint16(b[8:], counter)
	return benchIDs.EncodeToString(b[:])
}

// benchTime is the time of message i of all those seeded (every archive's):
// two messages in each 20 ms share a time, so that only the id orders them.
func benchTime(i int) time.Time {
	return benchT0.Add(time.Duration(i/2) * 20 * time.Millisecond)
}

func benchContact(i int) string {
	return fmt.Sprintf("contact%02d@example.net", i%benchContacts)
}

// BenchArchive seeds s, through AppendArchive, with an archive of 1,000,000
// messages and 100,000 more spread over other archives between them, then
// measures one page (Max 50) of it per sub-benchmark: the newest; 500,000
// messages deep, forward and backward; the deep page with a With filter; a
// Start/End window of 10,000 messages in the middle; and everything since
// the middle (Start alone). Each sub-benchmark first checks that its page
// is the right one. settle, if not nil, runs after the seeding (a backend's
// statistics, as its own maintenance would gather them).
func BenchArchive(b *testing.B, s storage.Store, settle func(b *testing.B)) {
	ctx := b.Context()
	ids := make([]string, 0, benchMessages)
	times := make([]time.Time, 0, benchMessages)
	withs := make([]string, 0, benchMessages)
	data := make([]byte, 0, 512)

	start := time.Now()
	batch := make([]storage.ArchivedMessage, 0, benchBatch)
	total := benchMessages + benchMessages/benchEvery
	for i := range total {
		at := benchTime(i)
		m := storage.ArchivedMessage{ID: benchID(at, uint16(i)), Time: at}
		if i%(benchEvery+1) == benchEvery {
			m.Owner = fmt.Sprintf("other%d@example.com", i%benchOthers)
			m.With = benchOwner
		} else {
			m.Owner, m.With = benchOwner, benchContact(len(ids))
			ids, times, withs = append(ids, m.ID), append(times, at), append(withs, m.With)
		}
		data = fmt.Appendf(data[:0], "<message xmlns='jabber:client' from='%s/phone' to='%s' type='chat' id='%08x'>"+
			"<body>Message %d: about the same length as a line someone types into a chat window.</body>"+
			"<active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='%08x'/></message>",
			m.With, m.Owner, i, i, i)
		m.Data = append([]byte(nil), data...)
		batch = append(batch, m)
		if len(batch) == benchBatch || i == total-1 {
			if err := s.AppendArchive(ctx, batch...); err != nil {
				b.Fatalf("AppendArchive: %v", err)
			}
			batch = batch[:0]
		}
	}
	elapsed := time.Since(start)
	b.Logf("seeded %d messages in %v (%.0f/s, batches of %d)", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), benchBatch)
	if len(ids) != benchMessages {
		b.Fatalf("seeded %d messages in the archive, want %d", len(ids), benchMessages)
	}
	if settle != nil {
		settle(b)
	}

	// firstOfPage returns the first id of the page of the messages that
	// keep keeps: the first benchPage, or the last with last.
	firstOfPage := func(keep func(k int) bool, last bool) string {
		var sel []int
		for k := range ids {
			if keep(k) {
				sel = append(sel, k)
			}
		}
		if len(sel) < benchPage {
			b.Fatalf("only %d messages selected", len(sel))
		}
		if last {
			return ids[sel[len(sel)-benchPage]]
		}
		return ids[sel[0]]
	}
	deepWith := withs[benchDeep]
	winStart := times[benchDeep]
	winEnd := times[benchDeep+benchWindow-1]
	inWindow := func(k int) bool { return !times[k].Before(winStart) && !times[k].After(winEnd) }
	for _, c := range []struct {
		name     string
		q        storage.ArchiveQuery
		first    string
		complete bool
	}{
		{"Newest", storage.ArchiveQuery{Max: benchPage, Last: true}, ids[benchMessages-benchPage], false},
		{"DeepAfter", storage.ArchiveQuery{Max: benchPage, AfterID: ids[benchDeep-1]}, ids[benchDeep], false},
		{"DeepBefore", storage.ArchiveQuery{Max: benchPage, BeforeID: ids[benchDeep], Last: true}, ids[benchDeep-benchPage], false},
		{"DeepAfterWith", storage.ArchiveQuery{Max: benchPage, AfterID: ids[benchDeep-1], With: deepWith},
			firstOfPage(func(k int) bool { return k >= benchDeep && withs[k] == deepWith }, false), false},
		{"NewestWith", storage.ArchiveQuery{Max: benchPage, Last: true, With: deepWith},
			firstOfPage(func(k int) bool { return withs[k] == deepWith }, true), false},
		{"Window", storage.ArchiveQuery{Max: benchPage, Start: winStart, End: winEnd},
			firstOfPage(inWindow, false), false},
		{"WindowLast", storage.ArchiveQuery{Max: benchPage, Start: winStart, End: winEnd, Last: true},
			firstOfPage(inWindow, true), false},
		{"SinceMiddle", storage.ArchiveQuery{Max: benchPage, Start: winStart},
			firstOfPage(func(k int) bool { return !times[k].Before(winStart) }, false), false},
	} {
		b.Run(c.name, func(b *testing.B) {
			page, err := s.QueryArchive(ctx, benchOwner, c.q)
			if err != nil {
				b.Fatalf("QueryArchive: %v", err)
			}
			if len(page.Messages) != benchPage || page.Complete != c.complete ||
				page.Messages[0].ID != c.first {
				b.Fatalf("page of %d messages from %s, complete %v; want %d from %s, complete %v",
					len(page.Messages), page.Messages[0].ID, page.Complete, benchPage, c.first, c.complete)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.QueryArchive(ctx, benchOwner, c.q); err != nil {
					b.Fatalf("QueryArchive: %v", err)
				}
			}
		})
	}
}
