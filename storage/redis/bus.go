package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xmppd/xmppd/storage"
)

// Defaults of BusOptions.
const (
	DefaultBusQueue      = 1024
	DefaultBusQueueBytes = 16 << 20
)

// busHealth is how long the bus's subscription may be silent before it
// PINGs, and then how long the PONG may take before the connection is
// taken for dead and replaced (a peer gone without a FIN or RST).
const busHealth = 5 * time.Second

var errBusClosed = errors.New("redis: bus closed")

// BusOptions configure OpenBus.
type BusOptions struct {
	// Addr, Prefix and Node are as in Options; Node must be the name the
	// node's Registry writes into its entries, since publishers find the
	// node there.
	Addr   string
	Prefix string
	Node   string
	// Queue bounds how many payloads wait for Serve's handler, and
	// QueueBytes how many bytes they hold; beyond either, a payload is
	// dropped and counted (Dropped). Zero means DefaultBusQueue and
	// DefaultBusQueueBytes.
	Queue      int
	QueueBytes int
	// Logger gets the bus's warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Bus is a storage.Bus over Redis pub/sub: node N listens on the channel
// <prefix>bus:N. Its methods are safe for concurrent use.
type Bus struct {
	client     *goredis.Client
	prefix     string
	channel    string // this node's
	queueLen   int
	queueBytes int64
	health     time.Duration // busHealth; shorter in tests
	log        *slog.Logger

	// mu guards ps and closed.
	mu     sync.Mutex
	ps     *goredis.PubSub
	closed atomic.Bool

	queue  chan []byte
	queued atomic.Int64 // bytes in queue
	// dropped counts payloads dropped because the queue was full.
	dropped atomic.Uint64
	// subscribed counts confirmed subscriptions: 1 after Serve, one more
	// after each reconnection.
	subscribed atomic.Uint64
	// unsubscribed is closed when Redis confirms Close's UNSUBSCRIBE.
	unsubscribed chan struct{}
	unsubOnce    sync.Once

	stop      context.CancelFunc
	wg        sync.WaitGroup // the reader and the dispatcher
	closeOnce sync.Once
	closeErr  error
}

var _ storage.Bus = (*Bus)(nil)

// OpenBus connects to Redis for node. It fails if Redis does not answer.
// The node receives nothing until Serve.
func OpenBus(ctx context.Context, o BusOptions) (*Bus, error) {
	copts, err := clientOptions(o.Addr)
	if err != nil {
		return nil, err
	}
	node := o.Node
	if node == "" {
		node = defaultNode()
	}
	// Named, so that CLIENT LIST tells the bus's connections apart.
	copts.ClientName = clientName("xmppd-bus-" + node)
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	b := &Bus{
		client:       goredis.NewClient(copts),
		prefix:       o.Prefix,
		channel:      o.Prefix + "bus:" + node,
		queueLen:     o.Queue,
		queueBytes:   int64(o.QueueBytes),
		health:       busHealth,
		log:          logger.With("node", node),
		unsubscribed: make(chan struct{}),
	}
	if b.queueLen <= 0 {
		b.queueLen = DefaultBusQueue
	}
	if b.queueBytes <= 0 {
		b.queueBytes = DefaultBusQueueBytes
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		b.client.Close()
		return nil, fmt.Errorf("redis: open bus on %s: %w", copts.Addr, err)
	}
	return b, nil
}

// clientName makes s acceptable to CLIENT SETNAME, which refuses spaces
// and newlines.
func clientName(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
}

func (b *Bus) channelOf(node string) string { return b.prefix + "bus:" + node }

// Publish implements storage.Bus in one round trip.
func (b *Bus) Publish(ctx context.Context, node string, payload []byte) (bool, error) {
	if b.closed.Load() {
		return false, fmt.Errorf("publish to %s: %w", node, errBusClosed)
	}
	n, err := b.client.Publish(ctx, b.channelOf(node), payload).Result()
	if err != nil {
		return false, fmt.Errorf("redis: publish to %s: %w", node, err)
	}
	return n > 0, nil
}

// PublishMany implements storage.Bus in one round trip (a pipeline, not a
// transaction: each PUBLISH counts its own receivers). On an error,
// received holds what is known: false for a payload whose PUBLISH failed.
func (b *Bus) PublishMany(ctx context.Context, msgs []storage.BusMessage) ([]bool, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("publish: %w", errBusClosed)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	cmds := make([]*goredis.IntCmd, len(msgs))
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, m := range msgs {
			cmds[i] = p.Publish(ctx, b.channelOf(m.Node), m.Payload)
		}
		return nil
	})
	received := make([]bool, len(msgs))
	for i, c := range cmds {
		received[i] = c.Err() == nil && c.Val() > 0
	}
	if err != nil {
		return received, fmt.Errorf("redis: publish: %w", err)
	}
	return received, nil
}

// Serve implements storage.Bus. h runs on a goroutine of the Bus; it must
// not call Close. When h is slower than the payloads come, up to Queue
// payloads (QueueBytes bytes) wait and the rest are dropped and counted:
// see the package doc for why the bus drops rather than blocks.
func (b *Bus) Serve(ctx context.Context, h func(payload []byte)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return fmt.Errorf("serve: %w", errBusClosed)
	}
	if b.ps != nil {
		return errors.New("redis: bus already serving")
	}
	ps := b.client.Subscribe(ctx, b.channel)
	// Once Redis confirms, a PUBLISH to this node counts it.
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			ps.Close()
			return fmt.Errorf("redis: subscribe %s: %w", b.channel, err)
		}
		if s, ok := msg.(*goredis.Subscription); ok && s.Kind == "subscribe" {
			break
		}
	}
	b.subscribed.Add(1)
	b.ps = ps
	b.queue = make(chan []byte, b.queueLen)
	rctx, stop := context.WithCancel(context.Background())
	b.stop = stop
	b.wg.Add(2)
	go b.read(rctx, ps)
	go b.dispatch(rctx, h)
	return nil
}

// read moves payloads from the subscription to the queue until ctx ends.
// go-redis dials again and subscribes again after a connection error; read
// finds out about a connection that died silently by PINGing it.
func (b *Bus) read(ctx context.Context, ps *goredis.PubSub) {
	defer b.wg.Done()
	pinged, failing, dropping := false, false, false
	var droppedBefore uint64
	for {
		var msg any
		var err error
		if pinged {
			// The PONG is due: a timeout now is a connection error, after
			// which go-redis replaces the connection.
			pctx, cancel := context.WithTimeout(ctx, b.health)
			msg, err = ps.ReceiveTimeout(pctx, 0)
			cancel()
		} else {
			msg, err = ps.ReceiveTimeout(ctx, b.health)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var nerr net.Error
			if !pinged && errors.As(err, &nerr) && nerr.Timeout() {
				pinged = ps.Ping(ctx) == nil
				continue
			}
			pinged = false
			if !failing {
				failing = true
				b.log.Warn("cluster bus: subscription lost; this node receives nothing from the others until it is back", "err", err)
			}
			// go-redis dials on the next Receive; not in a tight loop
			// while Redis is away.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			switch m.Kind {
			case "subscribe":
				b.subscribed.Add(1)
				if failing {
					failing = false
					b.log.Info("cluster bus: subscribed again")
				}
			case "unsubscribe":
				b.unsubOnce.Do(func() { close(b.unsubscribed) })
			}
		case *goredis.Message:
			if b.enqueue([]byte(m.Payload)) {
				if dropping {
					dropping = false
					b.log.Info("cluster bus: handler caught up", "dropped", b.dropped.Load()-droppedBefore)
				}
			} else if !dropping {
				dropping = true
				droppedBefore = b.dropped.Load() - 1
				b.log.Warn("cluster bus: handler too slow; dropping payloads", "queue", b.queueLen, "queue_bytes", b.queueBytes)
			}
		}
	}
}

// enqueue queues p for the handler, or drops it when the queue is full.
func (b *Bus) enqueue(p []byte) bool {
	n := int64(len(p))
	if b.queued.Add(n) > b.queueBytes {
		b.queued.Add(-n)
		b.dropped.Add(1)
		return false
	}
	select {
	case b.queue <- p:
		return true
	default:
		b.queued.Add(-n)
		b.dropped.Add(1)
		return false
	}
}

// dispatch hands queued payloads to h in order until ctx ends; what is
// still queued then is dropped.
func (b *Bus) dispatch(ctx context.Context, h func([]byte)) {
	defer b.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-b.queue:
			b.queued.Add(-int64(len(p)))
			h(p)
		}
	}
}

// Dropped returns how many payloads this node dropped because its handler
// fell behind (their publishers were told that the node took them).
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Close implements storage.Bus: it unsubscribes, so that a PUBLISH to this
// node counts no receiver once Close has returned, stops the goroutines of
// Serve, waiting for the handler, and closes the connections. Payloads
// still queued are dropped. Closing again returns the first result.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed.Store(true)
		ps := b.ps
		b.mu.Unlock()
		var err error
		if ps != nil {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			// Closing the connection would unsubscribe too, but Redis may
			// notice after Close returned; the confirmation of UNSUBSCRIBE
			// comes after Redis has done it.
			if err = ps.Unsubscribe(ctx, b.channel); err == nil {
				select {
				case <-b.unsubscribed:
				case <-ctx.Done():
					err = ctx.Err()
				}
			}
			cancel()
			if err != nil {
				err = fmt.Errorf("redis: close bus: unsubscribe: %w", err)
			}
			b.stop()
			ps.Close()
			b.wg.Wait()
		}
		b.closeErr = errors.Join(err, b.client.Close())
	})
	return b.closeErr
}
