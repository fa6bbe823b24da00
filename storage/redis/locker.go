package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// LockTTL bounds how long a lock outlives a node that took it and stopped
// without giving it back. Locks guard short read-modify-writes (a roster
// item, an offline queue), far shorter than this.
const LockTTL = 30 * time.Second

// A Locker serialises work on one key across every node sharing a Redis
// (xmpp.Locker): a key is held by the node that SET it with NX, and given
// back only by the holder, whose token it checks.
type Locker struct {
	client *goredis.Client
	prefix string
}

// Locker returns the registry's Locker, on the same connection and prefix.
func (r *Registry) Locker() *Locker {
	return &Locker{client: r.client, prefix: r.prefix + "lock:"}
}

// unlockScript deletes the lock only if it is still the caller's: one that
// expired and was taken by another node is left alone.
var unlockScript = goredis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// Lock waits until key is free, or ctx ends, and returns the function that
// frees it.
func (l *Locker) Lock(ctx context.Context, key string) (func(), error) {
	k := l.prefix + key
	token := incarnation()
	wait := time.Millisecond
	for {
		ok, err := l.client.SetNX(ctx, k, token, LockTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: lock %s: %w", key, err)
		}
		if ok {
			return func() {
				// Given back even when the caller's context has ended.
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
				defer cancel()
				unlockScript.Run(ctx, l.client, []string{k}, token)
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("redis: lock %s: %w", key, ctx.Err())
		case <-time.After(wait):
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}
