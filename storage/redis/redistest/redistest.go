package redistest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultAddr is the server that Addr uses when XMPPD_TEST_REDIS is unset.
const DefaultAddr = "127.0.0.1:6379"

// run tells this test process's prefixes from those of other processes
// sharing the server.
var run = randomHex(6)

// Addr returns the Redis server named by XMPPD_TEST_REDIS (host:port or a
// redis:// URL), or DefaultAddr, after checking that it answers.
//
// If it does not answer, the test is skipped, or fails when CI=true so that
// a broken CI service is not mistaken for a pass.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("XMPPD_TEST_REDIS")
	if addr == "" {
		addr = DefaultAddr
	}
	c, err := client(addr)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.Ping(ctx).Err()
		cancel()
		c.Close()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redistest: Redis not reachable (CI=true): %v", err)
		}
		t.Skipf("redistest: skipping, Redis not reachable (set XMPPD_TEST_REDIS to a server's host:port): %v", err)
	}
	return addr
}

// Prefix returns a key prefix of t's own on the server Addr returns, and
// deletes every key under it when t ends. Calls with the same t return the
// same prefix, so that several clients opened in one test (the nodes of a
// cluster) share their keys. Register cleanups that close those clients
// after calling Prefix, so that they run first.
func Prefix(t testing.TB) string {
	t.Helper()
	addr := Addr(t)
	name := sha256.Sum256([]byte(t.Name()))
	// Hex digits only: no glob characters for SCAN MATCH.
	prefix := "xmppd_t:" + run + ":" + hex.EncodeToString(name[:8]) + ":"
	t.Cleanup(func() {
		if err := deleteKeys(addr, prefix); err != nil {
			t.Errorf("redistest: delete keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

func deleteKeys(addr, prefix string) error {
	c, err := client(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func client(addr string) (*goredis.Client, error) {
	if strings.Contains(addr, "://") {
		o, err := goredis.ParseURL(addr)
		if err != nil {
			return nil, err
		}
		return goredis.NewClient(o), nil
	}
	return goredis.NewClient(&goredis.Options{Addr: addr}), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}
