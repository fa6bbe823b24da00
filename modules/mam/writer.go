package mam

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Bounds of the writer.
const (
	// maxBatch is the most messages one AppendArchive stores.
	maxBatch = 1024
	// linger is how long the writer lets a batch grow before it stores
	// one that is not full: a commit costs about as much for one message
	// as for hundreds (SQLite writes and syncs each touched page once per
	// transaction), so under load fewer, larger transactions cost the
	// server less CPU per message. Queries flush first, so no reader
	// waits for it.
	linger = 10 * time.Millisecond
	// maxPending is how many messages may wait for the writer before
	// archiving a message waits too: the store sets the pace.
	maxPending = 8192
	// appendTries and retryDelay bound the attempts to store a batch
	// while the store fails.
	appendTries = 5
	retryDelay  = 200 * time.Millisecond
)

// writer appends archived messages in batches, on a goroutine that exists
// only while there is something to write (like a session's writer): a
// message costs the hot path a lock and an append to a slice, and a busy
// server stores many messages per transaction. The goroutine is the
// server's (Server.Go), so Shutdown waits until what was accepted is
// stored.
type writer struct {
	srv   *xmpp.Server
	store storage.Archive
	log   *slog.Logger

	mu      sync.Mutex
	pending []storage.ArchivedMessage
	running bool
	// queued counts messages ever added, written those stored (or given
	// up); progress is closed, and replaced, whenever written grows or
	// the writer stops.
	queued, written uint64
	progress        chan struct{}
	// flushing is set while someone waits in flush: the writer stores at
	// once rather than linger. hurry wakes a lingering writer.
	flushing bool
	hurry    chan struct{}
}

func (w *writer) init(srv *xmpp.Server, store storage.Archive, log *slog.Logger) {
	w.srv, w.store, w.log = srv, store, log
	w.progress = make(chan struct{})
	w.hurry = make(chan struct{}, 1)
}

// wait lingers for a batch to grow, or until a flush hurries it.
func (w *writer) wait() {
	t := time.NewTimer(linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.hurry:
	}
}

// add queues msg, starting the writer if it is not running. When the
// writer is maxPending behind, add waits for it (or for ctx).
func (w *writer) add(ctx context.Context, msg storage.ArchivedMessage) {
	w.mu.Lock()
	for len(w.pending) >= maxPending {
		p := w.progress
		w.mu.Unlock()
		select {
		case <-p:
		case <-ctx.Done():
			// Shutting down with the store far behind: keep the message
			// anyway rather than drop it.
		}
		w.mu.Lock()
		if ctx.Err() != nil {
			break
		}
	}
	w.pending = append(w.pending, msg)
	w.queued++
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		w.srv.Go(w.run)
	}
}

// run stores batches until nothing is pending.
func (w *writer) run(ctx context.Context) {
	// What was accepted is stored even while the server stops.
	ctx = context.WithoutCancel(ctx)
	for {
		w.mu.Lock()
		if len(w.pending) < maxBatch && !w.flushing {
			w.mu.Unlock()
			w.wait()
			w.mu.Lock()
		}
		n := min(len(w.pending), maxBatch)
		if n == 0 {
			w.running = false
			w.signal()
			w.mu.Unlock()
			return
		}
		batch := w.pending[:n:n]
		w.pending = w.pending[n:]
		if len(w.pending) == 0 {
			w.pending = nil // let the backing array go
		}
		w.mu.Unlock()
		w.append(ctx, batch)
		w.mu.Lock()
		w.written += uint64(n)
		w.signal()
		w.mu.Unlock()
	}
}

// signal wakes those waiting for progress; w.mu is held.
func (w *writer) signal() {
	close(w.progress)
	w.progress = make(chan struct{})
}

// append stores a batch, trying again a few times while the store fails:
// about 3 s in all (retryDelay doubling), which rides out a database
// restart. Past that the batch is given up, and the log says how many
// messages of which archives are missing: the messages themselves were
// delivered or stored offline by then (archiving never holds delivery
// up), so only their archive copies are lost, and keeping them longer in
// memory would only move the loss to a crash or make senders wait.
func (w *writer) append(ctx context.Context, batch []storage.ArchivedMessage) {
	var err error
	for try := range appendTries {
		if err = w.store.AppendArchive(ctx, batch...); err == nil {
			return
		}
		if try < appendTries-1 {
			time.Sleep(retryDelay << try)
		}
	}
	w.log.Error("archiving messages failed; they are lost", "messages", len(batch),
		"archives", owners(batch, maxLoggedOwners), "err", err)
}

// maxLoggedOwners bounds the archives one log line names.
const maxLoggedOwners = 10

// owners lists the distinct archives of batch, at most max of them, and
// "…" when there are more.
func owners(batch []storage.ArchivedMessage, max int) []string {
	var out []string
	for _, m := range batch {
		if slices.Contains(out, m.Owner) {
			continue
		}
		if len(out) == max {
			return append(out, "…")
		}
		out = append(out, m.Owner)
	}
	return out
}

// flush waits until every message added before it was called is stored.
func (w *writer) flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.queued
	if w.written < target {
		w.flushing = true
		select {
		case w.hurry <- struct{}{}:
		default:
		}
	}
	for w.written < target {
		p := w.progress
		w.mu.Unlock()
		select {
		case <-p:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
	w.flushing = false
	w.mu.Unlock()
	return nil
}

// A Writer is the archive's batching writer for an archive of another
// module's (the chat service's room archives): Add costs the caller a lock
// and an append, and a query calls Flush first.
type Writer struct{ w writer }

// NewWriter returns a writer that appends to store on goroutines of srv
// (Server.Go), so that Shutdown waits until what it accepted is stored.
func NewWriter(srv *xmpp.Server, store storage.Archive, log *slog.Logger) *Writer {
	wr := &Writer{}
	wr.w.init(srv, store, log)
	return wr
}

// Add queues msg; it waits only while the store is far behind.
func (wr *Writer) Add(ctx context.Context, msg storage.ArchivedMessage) { wr.w.add(ctx, msg) }

// Flush waits until every message added before it was called is stored.
func (wr *Writer) Flush(ctx context.Context) error { return wr.w.flush(ctx) }
