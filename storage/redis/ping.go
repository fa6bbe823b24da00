package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// Ping asks the Redis server at addr (host:port or a redis:// URL, as
// Options.Addr) for PONG, without registering anything: for checking a
// configuration (xmppd -check) before a node joins.
func Ping(ctx context.Context, addr string) error {
	copts, err := clientOptions(addr)
	if err != nil {
		return err
	}
	// No retries: a check reports what it found, at once.
	copts.MaxRetries = -1
	copts.DialerRetries = 1
	c := goredis.NewClient(copts)
	defer c.Close()
	return c.Ping(ctx).Err()
}

// Ping asks Redis for PONG: whether this node can reach the registry now,
// for a readiness probe (internal/metrics). A closed registry fails.
func (r *Registry) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}
