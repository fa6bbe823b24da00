package redis

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xmppd/xmppd/storage/redis/redistest"
)

// The cluster bus (issue 20) carries stanzas from the node that routes
// them to the node that holds the recipient's session. These benchmarks
// measure the two ways Redis offers, on the same server: pub/sub (PUBLISH
// to the node's channel, fire and forget) and streams (XADD to the node's
// stream, read with XREAD BLOCK; entries stay until trimmed, so a node
// that reconnects can read what it missed). Each has a "one at a time"
// case (send, wait for it to arrive: the latency a chat message adds) and
// a "flow" case (send b.N without waiting; the receiver counts: the rate).
//
//	go test -run '^$' -bench Bus -benchtime 50000x ./storage/redis
//
// (A count, not a time: the streams are not trimmed here, so that an
// entry added faster than it is read is not trimmed away unread, which
// is what a MAXLEN bus does to a node that falls behind.)

// stanza is a chat message of typical size.
var stanza = []byte(`<message xmlns="jabber:client" from="alice@example.com/phone" to="bob@example.com/laptop" type="chat" id="` +
	strings.Repeat("x", 20) + `"><body>` + strings.Repeat("hello ", 30) + `</body><active xmlns="http://jabber.org/protocol/chatstates"/></message>`)

func busClients(b *testing.B) (pub, sub *goredis.Client, prefix string) {
	addr := redistest.Addr(b)
	prefix = redistest.Prefix(b)
	opts, err := clientOptions(addr)
	if err != nil {
		b.Fatal(err)
	}
	pub, sub = goredis.NewClient(opts), goredis.NewClient(opts)
	b.Cleanup(func() { pub.Close(); sub.Close() })
	return pub, sub, prefix
}

func BenchmarkBusPubSub(b *testing.B) {
	for _, oneAtATime := range []bool{true, false} {
		name := "flow"
		if oneAtATime {
			name = "one-at-a-time"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			pub, sub, prefix := busClients(b)
			ch := prefix + "bus:node-b"
			ps := sub.Subscribe(ctx, ch)
			defer ps.Close()
			if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
				b.Fatal(err)
			}
			msgs := ps.Channel(goredis.WithChannelSize(1 << 16))
			b.SetBytes(int64(len(stanza)))
			b.ResetTimer()
			if oneAtATime {
				for range b.N {
					if err := pub.Publish(ctx, ch, stanza).Err(); err != nil {
						b.Fatal(err)
					}
					<-msgs
				}
				return
			}
			done := make(chan struct{})
			go func() {
				for range b.N {
					<-msgs
				}
				close(done)
			}()
			const batch = 64
			for i := 0; i < b.N; i += batch {
				p := pub.Pipeline()
				for j := i; j < min(i+batch, b.N); j++ {
					p.Publish(ctx, ch, stanza)
				}
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			<-done
		})
	}
}

func BenchmarkBusStreams(b *testing.B) {
	for _, oneAtATime := range []bool{true, false} {
		name := "flow"
		if oneAtATime {
			name = "one-at-a-time"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			pub, sub, prefix := busClients(b)
			stream := prefix + "bus:node-b"
			got := make(chan int, 1<<10)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				last := "$"
				for {
					res, err := sub.XRead(rctx, &goredis.XReadArgs{Streams: []string{stream, last}, Count: 512, Block: 0}).Result()
					if err != nil {
						return
					}
					for _, s := range res {
						for _, m := range s.Messages {
							last = m.ID
						}
						got <- len(s.Messages)
					}
				}
			}()
			add := func(p goredis.Cmdable) {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"s", stanza}})
			}
			// The reader's first XREAD must be waiting before anything is
			// added ("$" is what comes after it was sent): one entry, read.
		warm:
			for {
				add(pub)
				select {
				case <-got:
					break warm
				case <-time.After(100 * time.Millisecond):
					// Added before the XREAD was waiting: again.
				}
			}
			for len(got) > 0 {
				<-got
			}
			b.SetBytes(int64(len(stanza)))
			b.ResetTimer()
			if oneAtATime {
				for range b.N {
					add(pub)
					<-got
				}
				return
			}
			const batch = 64
			n := 0
			for i := 0; i < b.N; i += batch {
				p := pub.Pipeline()
				for j := i; j < min(i+batch, b.N); j++ {
					add(p)
				}
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			for n < b.N {
				n += <-got
			}
		})
	}
}
