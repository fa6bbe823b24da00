package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// runMUC is the muc scenario: every client joins one room, the first
// -senders of them send groupchat at each offered rate, and every message is
// delivered to every occupant. Deliveries/s is messages/s times occupants.
func runMUC(ctx context.Context, cfg *config) (any, error) {
	if cfg.senders < 1 || cfg.senders > cfg.clients {
		return nil, fmt.Errorf("-senders must be between 1 and -clients")
	}
	return runMessages(ctx, cfg, "muc", func(ctx context.Context, st *chatState) error {
		st.room = cfg.room
		st.senders = min(cfg.senders, len(st.clients))
		st.fanout = int64(len(st.clients))
		return joinRoom(ctx, st)
	})
}

// joinRoom has every client join the room. The first one creates it and
// asks for an instant room (XEP-0045 §10.1.2) when the service says the
// room is new; the rest join together. A client has joined when its own
// presence (status 110) comes back.
func joinRoom(ctx context.Context, st *chatState) error {
	var wg sync.WaitGroup
	created := make(chan bool, 1)
	instant := make(chan struct{})
	var instantOnce sync.Once
	errs := make(chan string, len(st.clients))
	for i, c := range st.clients {
		wg.Add(1)
		selfD, selfS := []byte(st.room+"/"+c.user+`"`), []byte(st.room+"/"+c.user+`'`)
		var once sync.Once
		watch := func(el []byte) {
			switch {
			case bytes.HasPrefix(el, []byte("<presence")) && (bytes.Contains(el, selfD) || bytes.Contains(el, selfS)):
				if bytes.Contains(el, []byte(`type="error"`)) || bytes.Contains(el, []byte(`type='error'`)) {
					once.Do(func() { errs <- string(el); wg.Done() })
					return
				}
				if hasCode(el, "110") {
					once.Do(func() {
						if i == 0 {
							created <- hasCode(el, "201")
						}
						wg.Done()
					})
				}
			case i == 0 && bytes.HasPrefix(el, []byte("<iq")) && bytes.Contains(el, []byte("xmppbench-instant")):
				instantOnce.Do(func() { close(instant) })
			}
		}
		c.watch.Store(&watch)
	}
	join := func(c *client) error {
		_, err := io.WriteString(c.conn, "<presence to='"+st.room+"/"+c.user+"'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>")
		return err
	}
	wait := func(ch <-chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return fmt.Errorf("the room %s did not answer in 30 s", st.room)
		}
	}
	first := st.clients[0]
	if err := join(first); err != nil {
		return err
	}
	select {
	case isNew := <-created:
		if isNew {
			if _, err := io.WriteString(first.conn, "<iq type='set' id='xmppbench-instant' to='"+st.room+
				"'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"); err != nil {
				return err
			}
			if err := wait(instant); err != nil {
				return err
			}
		}
	case e := <-errs:
		return fmt.Errorf("joining %s: %.300s", st.room, e)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("no answer from %s to the first join", st.room)
	}
	for _, c := range st.clients[1:] {
		if err := join(c); err != nil {
			return err
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if err := wait(done); err != nil {
		return err
	}
	select {
	case e := <-errs:
		return fmt.Errorf("joining %s: %.300s", st.room, e)
	default:
	}
	for _, c := range st.clients {
		c.watch.Store(nil)
	}
	fmt.Fprintf(st.cfg.progress, "muc: %d occupants in %s\n", len(st.clients), st.room)
	return nil
}

// hasCode reports whether a raw presence carries a muc#user status code.
func hasCode(el []byte, code string) bool {
	return bytes.Contains(el, []byte(`code="`+code+`"`)) || bytes.Contains(el, []byte(`code='`+code+`'`))
}
