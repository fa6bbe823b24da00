package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/storagetest"
)

// block is a watch that reports one change and then waits for its end.
func block(ctx context.Context, send func(storage.GroupChange) bool) {
	if send(storage.GroupChange{Group: "eng"}) {
		<-ctx.Done()
	}
}

func TestWatchesDeliver(t *testing.T) {
	var w storage.Watches
	defer w.Close()
	ch := w.Start(t.Context(), block)
	select {
	case c := <-ch:
		if c != (storage.GroupChange{Group: "eng"}) {
			t.Errorf("got %+v, want the change the watch sent", c)
		}
	case <-time.After(time.Second):
		t.Fatal("no change")
	}
}

func TestWatchesEndWithContext(t *testing.T) {
	var w storage.Watches
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	ch := w.Start(ctx, block)
	cancel()
	storagetest.AwaitClosed(t, ch)
}

func TestWatchesClose(t *testing.T) {
	var w storage.Watches
	chs := []<-chan storage.GroupChange{w.Start(t.Context(), block), w.Start(t.Context(), block)}
	w.Close() // waits for both, though nobody reads their channels
	for _, ch := range chs {
		storagetest.AwaitClosed(t, ch)
	}
	// A watch started after Close ends at once.
	storagetest.AwaitClosed(t, w.Start(t.Context(), block))
}
