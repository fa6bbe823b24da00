package storage

import (
	"context"
	"sync"
)

// Watches owns the goroutines behind a backend's WatchGroups: each runs until
// its caller's context ends or the backend closes, and the backend's Close
// waits for all of them. The zero value is ready to use.
type Watches struct {
	once    sync.Once
	closing context.Context
	close   context.CancelFunc
	// mu orders Start's running.Add before Close's Wait: a watch started
	// while the backend closes either is waited for or never runs.
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

func (w *Watches) init() {
	w.once.Do(func() { w.closing, w.close = context.WithCancel(context.Background()) })
}

// Start runs watch in a goroutine of its own and returns the channel it
// reports on, which is closed when watch returns. The ctx given to watch ends
// when ctx does or when Close is called; send delivers a change, or reports
// false once that ctx has ended, when watch should return.
func (w *Watches) Start(ctx context.Context, watch func(ctx context.Context, send func(GroupChange) bool)) <-chan GroupChange {
	w.init()
	ch := make(chan GroupChange)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		close(ch)
		return ch
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(w.closing, cancel)
	w.running.Add(1)
	go func() {
		defer w.running.Done()
		defer close(ch)
		defer cancel()
		defer stop()
		watch(ctx, func(c GroupChange) bool {
			select {
			case ch <- c:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return ch
}

// Close ends every watch that Start started and waits for them to return.
func (w *Watches) Close() {
	w.init()
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.close()
	w.running.Wait()
}
