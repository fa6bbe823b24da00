package xmpp

import (
	"context"
	"errors"
	"sync"
)

// Bounds on setting up outgoing server-to-server streams (RFC 6120 §13.12,
// XEP-0205): each stanza to a domain without a stream starts a DNS lookup
// and a connection, so without a bound one account could make the server
// open as many at once as it names domains.
//
// Neither Prosody nor ejabberd bounds attempts in all or per sender (they
// bound the stanzas queued per stream, 32768 and unlimited, and time the
// attempt out, 90 s and 10 s of DNS); the defaults here are ours:
//   - 32 at once: an attempt holds a socket, a goroutine, the sockets of
//     its DNS queries and a TLS handshake, so 32 stay near 100 descriptors;
//     at the 0.1–0.5 s a reachable server takes to set up, 32 slots still
//     open 60–300 streams a second, far more than a server meets new
//     domains (streams stay open for the idle timeout).
//   - 8 per sender: a login's presence to contacts on 100 domains is out
//     within seconds, and one account never holds more than a quarter of
//     the server's slots.
//   - 1024 waiting, 128 per sender: a waiting attempt costs its stanza queue
//     (8 KiB at 1000 stanzas) and a timer, so ~9 MiB at most; 128 waiting
//     plus 8 connecting covers a roster spread over 136 servers.
const (
	DefaultS2SMaxConnecting          = 32
	DefaultS2SMaxConnectingPerSender = 8
	DefaultS2SMaxWaiting             = 1024
	DefaultS2SMaxWaitingPerSender    = 128
	DefaultS2SQueueSize              = 1000
)

// Why an attempt did not get to connect; s2sBounce words them for users.
var (
	errDialQueueFull       = errors.New("too many outgoing streams waiting to be set up")
	errDialSenderQueueFull = errors.New("too many outgoing streams of this sender waiting to be set up")
	errDialWaitTimeout     = errors.New("no slot to connect in before the connect timeout")
)

// A dialLimiter bounds the outgoing streams being set up, in all and per
// sender. Attempts past the bounds wait, each sender's in order and the
// senders served in turn, so that a newcomer does not wait behind all of
// a flood; an attempt still waiting at the end of its connect timeout
// fails, which answers every stanza within the connect timeout however
// many attempts are queued.
type dialLimiter struct {
	// Copied from Server at init; negative: no bound.
	max, perSender, maxWaiting, maxWaitingPerSender int

	mu      sync.Mutex
	active  int // attempts connecting
	waiting int
	senders map[string]*dialSender // senders with attempts connecting or waiting
	turn    []*dialSender          // senders with attempts waiting
	next    int                    // index in turn of the sender served next
}

type dialSender struct {
	key     string
	active  int
	waiting []*s2sOut
}

// An s2sOut's place in the limiter; guarded by dialLimiter.mu.
type dialState uint8

const (
	dialNone    dialState = iota // not admitted, or done with its place
	dialWaiting                  // in its sender's queue
	dialActive                   // holding a slot: connecting
)

// init applies the defaults to the server's settings and takes them.
func (l *dialLimiter) init(s *Server) {
	s.S2SMaxConnecting = orDefault(s.S2SMaxConnecting, DefaultS2SMaxConnecting)
	s.S2SMaxConnectingPerSender = orDefault(s.S2SMaxConnectingPerSender, DefaultS2SMaxConnectingPerSender)
	s.S2SMaxWaiting = orDefault(s.S2SMaxWaiting, DefaultS2SMaxWaiting)
	s.S2SMaxWaitingPerSender = orDefault(s.S2SMaxWaitingPerSender, DefaultS2SMaxWaitingPerSender)
	l.max, l.perSender = s.S2SMaxConnecting, s.S2SMaxConnectingPerSender
	l.maxWaiting, l.maxWaitingPerSender = s.S2SMaxWaiting, s.S2SMaxWaitingPerSender
	l.senders = make(map[string]*dialSender)
}

func under(n, bound int) bool { return bound < 0 || n < bound }

// admit starts o connecting if there is a slot for it, else queues it
// until one frees or o.ctx ends; an error when it may not even wait.
func (l *dialLimiter) admit(o *s2sOut) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	sd := l.senders[o.sender]
	if sd == nil {
		sd = &dialSender{key: o.sender}
	}
	// A sender with attempts waiting is at its bound or the server at its
	// own (otherwise dispatch would have started them): o queues too, so
	// that a sender's attempts start in order.
	if len(sd.waiting) == 0 && under(l.active, l.max) && under(sd.active, l.perSender) {
		l.senders[o.sender] = sd
		l.start(sd, o)
		return nil
	}
	if !under(l.waiting, l.maxWaiting) {
		return errDialQueueFull
	}
	if !under(len(sd.waiting), l.maxWaitingPerSender) {
		return errDialSenderQueueFull
	}
	l.senders[o.sender] = sd
	if len(sd.waiting) == 0 {
		l.turn = append(l.turn, sd)
	}
	sd.waiting = append(sd.waiting, o)
	l.waiting++
	o.dial = dialWaiting
	o.stopWait = context.AfterFunc(o.ctx, func() { l.expire(o) })
	return nil
}

// start gives o a slot and its goroutine; l.mu is held.
func (l *dialLimiter) start(sd *dialSender, o *s2sOut) {
	l.active++
	sd.active++
	o.dial = dialActive
	o.srv.wg.Add(1)
	go o.run()
}

// release gives up o's place: its slot, once the stream is set up or has
// failed, or its place in the queue. It may be called more than once.
func (l *dialLimiter) release(o *s2sOut) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sd := l.senders[o.sender]
	switch o.dial {
	case dialWaiting:
		o.stopWait()
		l.unqueue(sd, o)
	case dialActive:
		l.active--
		sd.active--
		l.dispatch()
	default:
		return
	}
	o.dial = dialNone
	l.forget(sd)
}

// expire fails o if it is still waiting when its connect timeout ends (or
// the server shuts down).
func (l *dialLimiter) expire(o *s2sOut) {
	l.mu.Lock()
	if o.dial != dialWaiting {
		l.mu.Unlock()
		return
	}
	sd := l.senders[o.sender]
	l.unqueue(sd, o)
	o.dial = dialNone
	l.forget(sd)
	l.mu.Unlock()
	o.fail(&s2sError{RemoteServerTimeout, errDialWaitTimeout})
}

// dispatch starts waiting attempts while there are slots, taking the
// senders in turn; l.mu is held.
func (l *dialLimiter) dispatch() {
	for under(l.active, l.max) && len(l.turn) > 0 {
		started := false
		for i := 0; i < len(l.turn); i++ {
			idx := (l.next + i) % len(l.turn)
			sd := l.turn[idx]
			if !under(sd.active, l.perSender) {
				continue
			}
			o := sd.waiting[0]
			o.stopWait()
			l.unqueue(sd, o) // may drop sd from turn, at idx
			if idx < len(l.turn) && l.turn[idx] == sd {
				idx++ // sd still waits: the next sender's turn
			}
			if l.next = idx; l.next >= len(l.turn) {
				l.next = 0
			}
			l.start(sd, o)
			started = true
			break
		}
		if !started {
			return // every waiting sender is at its own bound
		}
	}
}

// unqueue takes o out of its sender's queue; l.mu is held.
func (l *dialLimiter) unqueue(sd *dialSender, o *s2sOut) {
	for i, w := range sd.waiting {
		if w == o {
			sd.waiting = append(sd.waiting[:i], sd.waiting[i+1:]...)
			l.waiting--
			break
		}
	}
	if len(sd.waiting) > 0 {
		return
	}
	sd.waiting = nil
	for i, t := range l.turn {
		if t == sd {
			l.turn = append(l.turn[:i], l.turn[i+1:]...)
			if l.next > i {
				l.next--
			}
			break
		}
	}
	if l.next >= len(l.turn) {
		l.next = 0
	}
}

// forget drops a sender with nothing connecting or waiting; l.mu is held.
func (l *dialLimiter) forget(sd *dialSender) {
	if sd.active == 0 && len(sd.waiting) == 0 {
		delete(l.senders, sd.key)
	}
}

// S2SConnecting reports the outgoing streams being set up and the
// attempts waiting for their turn.
func (s *Server) S2SConnecting() (connecting, waiting int) {
	l := &s.s2sDials
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active, l.waiting
}
