package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/modules/register"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/sqlite"
)

// TestInviteCreate: each "invite create" prints a new token whose hash,
// not the token, is stored, good once, until -ttl has passed.
func TestInviteCreate(t *testing.T) {
	data := newData(t)
	d := []string{"-data", data}
	ctl(t, "", append(d, "invite", "bogus")...).check(t, "unknown", 2, "unknown invite command")
	ctl(t, "", append(d, "invite", "create", "extra")...).check(t, "stray argument", 2, "usage")
	r1 := ctl(t, "", append(d, "invite", "create")...)
	r1.check(t, "create", 0, "")
	r2 := ctl(t, "", append(d, "invite", "create", "-ttl", "1m")...)
	r2.check(t, "create -ttl", 0, "")
	t1, t2 := strings.TrimSpace(r1.stdout), strings.TrimSpace(r2.stdout)
	if len(t1) < 20 || t1 == t2 {
		t.Fatalf("tokens %q and %q: want two distinct long ones", t1, t2)
	}

	st, err := sqlite.Open(context.Background(), filepath.Join(data, "xmppd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, now := context.Background(), time.Now()
	// The plain token is not what is stored.
	if err := st.UseInvite(ctx, []byte(t1), now); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the token itself works as a stored hash: %v", err)
	}
	// The one-minute invitation has expired two minutes on; the default
	// one is good for days, once.
	if err := st.UseInvite(ctx, register.HashToken(t2), now.Add(2*time.Minute)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an invitation past its -ttl: %v", err)
	}
	if err := st.UseInvite(ctx, register.HashToken(t1), now.Add(6*24*time.Hour)); err != nil {
		t.Fatalf("the invitation within its week: %v", err)
	}
	if err := st.UseInvite(ctx, register.HashToken(t1), now); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an invitation used twice: %v", err)
	}
}
