package testenv_test

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xmppd/xmppd/internal/testenv"
)

// A restarted private Redis answers on the same address, empty.
func TestRedisServerRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr()})
	defer c.Close()
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("Redis answers after Stop")
	}
	r.Start()
	n, err := c.Exists(ctx, "k").Result()
	if err != nil || n != 0 {
		t.Fatalf("after the restart: exists=%d err=%v, want an empty Redis", n, err)
	}
	r.Restart()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("after Restart: %v", err)
	}
}
