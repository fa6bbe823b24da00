package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisServer is a private redis-server on a free loopback port, for tests
// that stop and restart Redis (never the shared one). It keeps nothing on
// disk: started again, it is empty, as a Redis without persistence that
// restarted.
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
}

// NeedRedisServer skips the test when redis-server is not installed, or
// fails it under CI=true.
func NeedRedisServer(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is missing (CI=true): apt-get install redis-server")
		}
		t.Skip("redis-server is missing: apt-get install redis-server")
	}
	return bin
}

// StartRedis starts a private Redis and stops it when t ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	r := &RedisServer{t: t, bin: NeedRedisServer(t), dir: t.TempDir(), port: freePort(t)}
	t.Cleanup(r.Stop)
	r.Start()
	return r
}

// Addr is the server's host:port; the same after a restart.
func (r *RedisServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Start starts the server, empty, unless it runs, and waits until it
// answers PING.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return
	}
	r.out = &syncBuffer{}
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no",
		"--logfile", "", "--protected-mode", "yes")
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited
	deadline := time.Now().Add(Timeout)
	for {
		if err := r.ping(); err == nil {
			return
		} else if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s does not answer: %v\n%s", r.Addr(), err, r.out)
		}
		select {
		case <-exited:
			r.t.Fatalf("redis-server exited at start:\n%s", r.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the server, if it runs, and waits until it is gone: what it
// held is lost.
func (r *RedisServer) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Restart stops the server and starts it again, empty, on the same port.
func (r *RedisServer) Restart() {
	r.t.Helper()
	r.Stop()
	r.Start()
}

// ping sends PING in the inline protocol and expects +PONG.
func (r *RedisServer) ping() error {
	c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
