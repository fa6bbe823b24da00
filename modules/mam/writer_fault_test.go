package mam_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
)

// failingArchive is a real store whose AppendArchive fails the next
// failures times (forever when negative).
type failingArchive struct {
	storage.Store
	failures atomic.Int64
}

func (f *failingArchive) AppendArchive(ctx context.Context, msgs ...storage.ArchivedMessage) error {
	if n := f.failures.Load(); n != 0 {
		f.failures.Add(-1)
		return errors.New("disk I/O error")
	}
	return f.Store.AppendArchive(ctx, msgs...)
}

// TestWriterStoreFaults: the archive's writer rides out a store that fails
// for a moment (a database restart) and loses nothing; a store that keeps
// failing costs the batch, and the error log says how many messages of
// which archives are missing.
func TestWriterStoreFaults(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	st := &failingArchive{Store: s.Store}
	var log testenv.LogBuffer
	w := mam.NewWriter(s.Server, st, slog.New(slog.NewTextHandler(&log, nil)))
	ctx := context.Background()
	msg := func(id, owner string) storage.ArchivedMessage {
		return storage.ArchivedMessage{ID: id, Owner: owner, With: "x@localhost", Time: time.Now().UTC().Truncate(time.Microsecond),
			Data: []byte(`<message xmlns="jabber:client"><body>` + id + `</body></message>`)}
	}
	count := func(owner string) int {
		page, err := s.Store.QueryArchive(ctx, owner, storage.ArchiveQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Messages)
	}

	st.failures.Store(2)
	w.Add(ctx, msg("0001", "alice@localhost"))
	w.Add(ctx, msg("0002", "alice@localhost"))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count("alice@localhost"); n != 2 || strings.Contains(log.String(), "lost") {
		t.Fatalf("after two failures: %d messages archived, want 2; log:\n%s", n, log.String())
	}

	st.failures.Store(-1)
	w.Add(ctx, msg("0003", "alice@localhost"))
	w.Add(ctx, msg("0004", "bob@localhost"))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.failures.Store(0)
	// The two may have gone in one batch or two (the writer batches what
	// is pending when it writes): the lines together must count both and
	// name both archives.
	out := log.String()
	lost := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "archiving messages failed; they are lost") {
			var n int
			if i := strings.Index(line, "messages="); i >= 0 {
				fmt.Sscanf(line[i:], "messages=%d", &n)
			}
			lost += n
		}
	}
	if lost != 2 || !strings.Contains(out, "alice@localhost") || !strings.Contains(out, "bob@localhost") {
		t.Fatalf("the log does not say what was lost (%d messages counted, want 2):\n%s", lost, out)
	}
}
