package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The soak scenario: clients over TCP, WebSocket and BOSH stay for
// -duration, each at a gentle, bounded rate sending one-to-one messages (to
// the peer's bare JID, so that a peer who is away gets them from offline
// storage), changing presence, talking in rooms and now and then leaving,
// cleanly or abruptly, and coming back. Every message carries a unique id;
// the result counts which arrived. Meanwhile the server's memory,
// goroutines and open files are sampled (soaksample.go): they must stay
// flat.

// Message bodies carry "SKC" (chat) or "SKR" (room) and 16 hex digits of
// the message's id.
const (
	soakChatMarker = "SKC"
	soakRoomMarker = "SKR"
	soakMarkerLen  = 3 + 16
)

// soakOptions are the soak's flags.
type soakOptions struct {
	duration   time.Duration
	transports []string // tcp, ws, bosh: client i uses transports[i%len]
	sample     time.Duration
	metricsURL string
	logPath    string
	rooms      int     // rooms soak0..soakN-1 at the MUC service of -room
	roomShare  float64 // the fraction of clients that join rooms
	roomsEach  int     // how many rooms each of them joins
	msgEvery   time.Duration
	presEvery  time.Duration
	roomEvery  time.Duration
	leaveEvery time.Duration // each client leaves and comes back about this often
	offline    time.Duration // the longest a client stays away
	drain      time.Duration // how long to wait for the last messages
	settle     time.Duration // how long to wait for the server to be empty
}

var soakTransports = []string{"tcp", "ws", "bosh"}

// pendingMsg is a message sent and not yet received: who sent it to whom,
// and on which of their connections (0: the recipient was offline).
type pendingMsg struct {
	at       time.Time
	from, to *soakUser
	fromGen  int64
	toGen    int64
}

// soakUser is one account: its transport, its rooms and its current
// connection.
type soakUser struct {
	idx       int
	name      string
	bare      string
	transport string
	rooms     []string

	mu         sync.Mutex
	conn       *soakConn // nil while away
	gen        int64     // connections made so far
	abrupt     map[int64]bool
	lastAbrupt time.Time
}

func (u *soakUser) current() (*soakConn, int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conn == nil {
		return nil, 0
	}
	return u.conn, u.conn.gen
}

// cut reports whether the user's connection gen ended abruptly: what it
// sent last may not have reached the server.
func (u *soakUser) cut(gen int64) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.abrupt[gen]
}

// unsure reports whether a message sent at at to the user, on its
// connection gen (0: away), may have been lost with a connection the user
// cut: gen ended abruptly, or the user vanished shortly before (a BOSH
// session lives on at the server until its inactivity timeout, a minute,
// and takes what is sent there).
func (u *soakUser) unsure(gen int64, at time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.abrupt[gen] || !u.lastAbrupt.IsZero() && at.Sub(u.lastAbrupt) < 75*time.Second
}

// soakConn is one connection of a user.
type soakConn struct {
	*client
	u       *soakUser
	gen     int64
	wmu     sync.Mutex
	joined  chan joinResult
	bye     chan struct{} // the ping before a clean end was answered
	byeOnce sync.Once
	done    chan struct{} // the reader has ended
	closing atomic.Bool
}

// joinResult is what the reader saw of a join: the user's own presence
// from the room (created: the room is new) or an error, or the answer to
// the new room's configuration (configured).
type joinResult struct {
	room       string
	created    bool
	configured bool
	err        string
}

func (c *soakConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

type soakState struct {
	cfg   *config
	o     *soakOptions
	users []*soakUser
	pace  *pacer
	ids   atomic.Uint64

	mu          sync.Mutex
	pending     map[uint64]pendingMsg // chat messages not yet received
	roomPending map[uint64]pendingMsg // room messages whose echo has not come back

	chatSent, chatRecv, chatDup, chatErrors, misrouted atomic.Int64
	roomSent, roomEcho, roomDeliv, roomErrors          atomic.Int64
	presSent, presRecv, pings                          atomic.Int64
	leftClean, leftAbrupt, logins, loginFails          atomic.Int64
	joinFails, serverClosed, writeFails                atomic.Int64
	online                                             atomic.Int64
	hist                                               histogram

	errMu sync.Mutex
	errs  map[string]int
}

func (st *soakState) fail(what string, err error) {
	msg := what + ": " + err.Error()
	if len(msg) > 160 {
		msg = msg[:160]
	}
	st.errMu.Lock()
	if len(st.errs) < 40 || st.errs[msg] > 0 {
		st.errs[msg]++
	}
	st.errMu.Unlock()
}

// pacer spaces events (logins) at most rate a second.
type pacer struct {
	mu    sync.Mutex
	next  time.Time
	every time.Duration
}

func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.every)
	p.mu.Unlock()
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func runSoak(ctx context.Context, cfg *config) (any, error) {
	o := &cfg.soak
	if cfg.clients < 2 {
		return nil, errors.New("soak needs at least 2 clients")
	}
	rate := cfg.rate
	if rate <= 0 {
		rate = 50
	}
	st := &soakState{cfg: cfg, o: o, pace: &pacer{every: time.Second / time.Duration(rate)},
		pending: map[uint64]pendingMsg{}, roomPending: map[uint64]pendingMsg{}, errs: map[string]int{}}
	service := cfg.room[strings.IndexByte(cfg.room, '@')+1:]
	joiners := int(float64(cfg.clients)*o.roomShare + 0.5)
	if o.rooms < 1 {
		joiners = 0
	}
	res := &soakResult{Scenario: "soak", Server: cfg.server, Clients: cfg.clients, Transports: map[string]int{}}
	for i := range cfg.clients {
		u := &soakUser{idx: i, name: cfg.user(i), transport: o.transports[i%len(o.transports)], abrupt: map[int64]bool{}}
		u.bare = u.name + "@" + cfg.domain
		if i < joiners {
			for k := range min(o.roomsEach, o.rooms) {
				u.rooms = append(u.rooms, "soak"+strconv.Itoa((i+k)%o.rooms)+"@"+service)
			}
		}
		res.Transports[u.transport]++
		st.users = append(st.users, u)
	}
	smp := newSampler(cfg, st)
	res.Baseline = smp.take(ctx, "baseline")
	start := time.Now()

	// Everyone signs in, then the rooms are made one by one and filled.
	inTurn(ctx, len(st.users), cfg.concurrency, func(i int) {
		if _, err := st.connect(ctx, st.users[i], false); err != nil {
			st.fail("first login", err)
		}
	})
	res.FirstLoginFailures = int(st.loginFails.Load())
	if err := st.fillRooms(ctx); err != nil {
		st.closeAll(ctx)
		return res, err
	}
	res.SignInSeconds = round(time.Since(start).Seconds(), 1)
	fmt.Fprintf(cfg.progress, "soak: %d of %d clients online after %.0f s; running for %s\n",
		st.online.Load(), cfg.clients, res.SignInSeconds, o.duration)
	if res.FirstLoginFailures > 0 {
		st.closeAll(ctx)
		return res, fmt.Errorf("%d clients could not sign in: %v", res.FirstLoginFailures, st.errs)
	}

	res.Start = smp.take(ctx, "start")
	sampling, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		smp.loop(sampling)
	}()
	end := time.Now().Add(o.duration)
	var lives sync.WaitGroup
	for _, u := range st.users {
		lives.Add(1)
		go func() {
			defer lives.Done()
			st.live(ctx, u, end)
		}()
	}
	lives.Wait()
	stopSampling()
	<-samplerDone
	res.RunSeconds = round(time.Since(end.Add(-o.duration)).Seconds(), 1)

	// The load has stopped with everyone back online: wait for the last
	// messages, then take the end figures before anyone leaves.
	st.drain(ctx)
	res.End = smp.take(ctx, "end")
	res.Samples = smp.series()
	st.closeAll(ctx)
	res.After = smp.settle(ctx, res.Baseline)
	st.summarise(res)
	res.Log = scanLog(o.logPath, smp.logOffset)

	var errs []error
	if res.Chat.Lost > 0 || res.Room.Lost > 0 {
		errs = append(errs, fmt.Errorf("lost %d chat and %d room messages", res.Chat.Lost, res.Room.Lost))
	}
	if res.Log != nil && res.Log.Errors > 0 {
		errs = append(errs, fmt.Errorf("%d ERROR lines in %s", res.Log.Errors, o.logPath))
	}
	errs = append(errs, ctx.Err())
	return res, errors.Join(errs...)
}

// dial opens the user's transport.
func (st *soakState) dial(ctx context.Context, u *soakUser) (*client, error) {
	cfg := st.cfg
	src := cfg.source(u.idx)
	switch u.transport {
	case "ws":
		raw, err := dialWebSocket(ctx, cfg, src)
		if err != nil {
			return nil, err
		}
		return &client{raw: raw, conn: raw, f: newFramer(2048), web: true}, nil
	case "bosh":
		raw := dialBOSH(cfg, src)
		return &client{raw: raw, conn: raw, f: newFramer(2048), web: true}, nil
	}
	d := net.Dialer{Timeout: cfg.timeout}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	raw, err := d.DialContext(ctx, "tcp", cfg.addr(u.idx))
	if err != nil {
		return nil, err
	}
	return &client{raw: raw, conn: raw, f: newFramer(2048)}, nil
}

// connect signs the user in (paced), starts its reader, sends initial
// presence and, with rooms, joins the user's rooms.
func (st *soakState) connect(ctx context.Context, u *soakUser, rooms bool) (*soakConn, error) {
	if err := st.pace.wait(ctx); err != nil {
		return nil, err
	}
	c, err := st.dial(ctx, u)
	if err == nil {
		c.raw.SetDeadline(time.Now().Add(min(st.cfg.timeout, time.Minute)))
		if err = c.signIn(st.cfg, u.name); err != nil {
			c.Close()
		}
		c.raw.SetDeadline(time.Time{})
	}
	if err != nil {
		st.loginFails.Add(1)
		return nil, err
	}
	st.logins.Add(1)
	u.mu.Lock()
	u.gen++
	sc := &soakConn{client: c, u: u, gen: u.gen, joined: make(chan joinResult, 16), bye: make(chan struct{}), done: make(chan struct{})}
	u.mu.Unlock()
	go st.read(sc)
	if err := sc.write([]byte("<iq type='get' id='r'><query xmlns='" + nsRoster + "'/></iq><presence/>")); err != nil {
		st.abort(sc)
		return nil, err
	}
	u.mu.Lock()
	u.conn = sc
	u.mu.Unlock()
	st.online.Add(1)
	if rooms {
		for _, r := range u.rooms {
			if err := st.join(ctx, sc, r); err != nil {
				st.joinFails.Add(1)
				st.fail("join", err)
			}
		}
	}
	return sc, nil
}

// join enters a room and waits for the user's own presence (XEP-0045
// §7.2.3); a room that is new is configured as persistent, so that it
// outlives its occupants' comings and goings.
func (st *soakState) join(ctx context.Context, sc *soakConn, room string) error {
	err := sc.write([]byte("<presence to='" + room + "/" + sc.u.name + "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"))
	if err != nil {
		return err
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case j := <-sc.joined:
			if j.room != room {
				continue
			}
			if j.err != "" {
				return fmt.Errorf("%s: %.200s", room, j.err)
			}
			if j.configured {
				return nil
			}
			if !j.created {
				return nil
			}
			// The room stays locked until it is configured (§10.1.1):
			// the others join once the answer is in.
			err := sc.write([]byte("<iq type='set' id='soak-config' to='" + room + "'><query xmlns='http://jabber.org/protocol/muc#owner'>" +
				"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>" +
				"<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>"))
			if err != nil {
				return err
			}
		case <-sc.done:
			return errors.New(room + ": the connection ended while joining")
		case <-t.C:
			return errors.New(room + ": no answer to the join in 30 s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fillRooms has each room's first member make it, then the rest join.
func (st *soakState) fillRooms(ctx context.Context) error {
	first := map[string]bool{}
	for _, u := range st.users {
		for _, r := range u.rooms {
			if first[r] {
				continue
			}
			first[r] = true
			sc, _ := u.current()
			if sc == nil {
				continue
			}
			if err := st.join(ctx, sc, r); err != nil {
				return fmt.Errorf("making the room: %w", err)
			}
		}
	}
	made := map[string]*soakUser{}
	for _, u := range st.users {
		for _, r := range u.rooms {
			if made[r] == nil {
				made[r] = u
			}
		}
	}
	inTurn(ctx, len(st.users), st.cfg.concurrency, func(i int) {
		u := st.users[i]
		sc, _ := u.current()
		if sc == nil {
			return
		}
		for _, r := range u.rooms {
			if made[r] == u {
				continue
			}
			if err := st.join(ctx, sc, r); err != nil {
				st.joinFails.Add(1)
				st.fail("join", err)
			}
		}
	})
	if n := st.joinFails.Load(); n > 0 {
		return fmt.Errorf("%d room joins failed: %v", n, st.errs)
	}
	return nil
}

// live is one user's life for the run: messages, presence, room messages
// and leaving, each at random times around its mean interval. At the end
// a user who is away comes back, so that everyone is online for the drain.
func (st *soakState) live(ctx context.Context, u *soakUser, end time.Time) {
	o := st.o
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(u.idx)))
	after := func(mean time.Duration) time.Time {
		if mean <= 0 {
			return end.Add(time.Hour)
		}
		return time.Now().Add(time.Duration(rng.ExpFloat64() * float64(mean)))
	}
	msgAt, presAt, roomAt, leaveAt := after(o.msgEvery), after(o.presEvery), after(o.roomEvery), after(o.leaveEvery)
	if len(u.rooms) == 0 {
		roomAt = end.Add(time.Hour)
	}
	show := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		next := earliest(msgAt, presAt, roomAt, leaveAt)
		if !next.Before(end) {
			break
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		sc, _ := u.current()
		if sc == nil {
			// Away (the last comeback failed): try again now.
			st.connect(ctx, u, true)
			leaveAt = after(o.leaveEvery)
			continue
		}
		switch next {
		case msgAt:
			msgAt = after(o.msgEvery)
			to := st.users[rng.IntN(len(st.users)-1)]
			if to == u {
				to = st.users[len(st.users)-1]
			}
			st.sendChat(sc, to)
		case presAt:
			presAt = after(o.presEvery)
			show = (show + 1) % 3
			p := [...]string{"<presence/>", "<presence><show>away</show><status>soak</status></presence>", "<presence><show>dnd</show></presence>"}[show]
			if err := sc.write([]byte(p)); err != nil {
				st.writeFails.Add(1)
			} else {
				st.presSent.Add(1)
			}
		case roomAt:
			roomAt = after(o.roomEvery)
			st.sendRoom(sc, u.rooms[rng.IntN(len(u.rooms))])
		case leaveAt:
			if rng.IntN(2) == 0 {
				st.leaveAbruptly(sc)
			} else {
				st.leave(sc)
			}
			away := time.Second + time.Duration(rng.Int64N(int64(max(o.offline-time.Second, 1))))
			timer.Reset(min(away, time.Until(end)))
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
			if _, err := st.connect(ctx, u, true); err != nil {
				st.fail("comeback", err)
			}
			leaveAt = after(o.leaveEvery)
		}
	}
	if sc, _ := u.current(); sc == nil && ctx.Err() == nil {
		for range 3 {
			if _, err := st.connect(ctx, u, true); err == nil {
				break
			} else {
				st.fail("comeback at the end", err)
			}
		}
	}
}

func earliest(ts ...time.Time) time.Time {
	e := ts[0]
	for _, t := range ts[1:] {
		if t.Before(e) {
			e = t
		}
	}
	return e
}

func (st *soakState) sendChat(sc *soakConn, to *soakUser) {
	id := st.ids.Add(1)
	_, toGen := to.current()
	st.mu.Lock()
	st.pending[id] = pendingMsg{at: time.Now(), from: sc.u, to: to, fromGen: sc.gen, toGen: toGen}
	st.mu.Unlock()
	buf := make([]byte, 0, 160)
	buf = append(buf, "<message type='chat' to='"...)
	buf = append(buf, to.bare...)
	buf = append(buf, "'><body>"+soakChatMarker...)
	buf = appendHex(buf, id, 16)
	buf = append(buf, "</body></message>"...)
	st.chatSent.Add(1)
	if err := sc.write(buf); err != nil {
		st.writeFails.Add(1)
	}
}

func (st *soakState) sendRoom(sc *soakConn, room string) {
	id := st.ids.Add(1)
	st.mu.Lock()
	st.roomPending[id] = pendingMsg{at: time.Now(), from: sc.u, fromGen: sc.gen}
	st.mu.Unlock()
	buf := make([]byte, 0, 160)
	buf = append(buf, "<message type='groupchat' to='"...)
	buf = append(buf, room...)
	buf = append(buf, "'><body>"+soakRoomMarker...)
	buf = appendHex(buf, id, 16)
	buf = append(buf, "</body></message>"...)
	st.roomSent.Add(1)
	if err := sc.write(buf); err != nil {
		st.writeFails.Add(1)
	}
}

// offline marks the user away from sc, if sc is its connection.
func (st *soakState) offline(sc *soakConn, abrupt bool) {
	u := sc.u
	u.mu.Lock()
	if abrupt {
		u.abrupt[sc.gen] = true
		u.lastAbrupt = time.Now()
	}
	was := u.conn == sc
	if was {
		u.conn = nil
	}
	u.mu.Unlock()
	if was {
		st.online.Add(-1)
	}
}

// leaveAbruptly drops the connection without a word, as a phone that loses
// its network: no unavailable presence, no stream end.
func (st *soakState) leaveAbruptly(sc *soakConn) {
	st.offline(sc, true)
	st.abort(sc)
	st.leftAbrupt.Add(1)
}

func (st *soakState) abort(sc *soakConn) {
	sc.closing.Store(true)
	sc.Close()
	<-sc.done
}

// leave ends the stream cleanly: unavailable presence, then a ping whose
// answer says that everything routed to this connection before has come
// (later messages go to offline storage), then the stream's end, and the
// server's.
func (st *soakState) leave(sc *soakConn) {
	st.offline(sc, false)
	sc.closing.Store(true)
	wait := func(ch <-chan struct{}) bool {
		t := time.NewTimer(15 * time.Second)
		defer t.Stop()
		select {
		case <-ch:
			return true
		case <-t.C:
			return false
		}
	}
	if err := sc.write([]byte("<presence type='unavailable'/><iq type='get' id='soak-bye' to='" + st.cfg.domain + "'><ping xmlns='" + nsPing + "'/></iq>")); err != nil {
		st.fail("leave", err)
	} else if !wait(sc.bye) {
		st.fail("leave", errors.New("no answer to the last ping in 15 s"))
	} else if err := sc.write([]byte("</stream:stream>")); err != nil {
		st.fail("leave", err)
	} else if !wait(sc.done) {
		st.fail("leave", errors.New("the server did not end the stream in 15 s"))
	}
	if b, ok := sc.raw.(*boshConn); ok {
		b.closeAfterTerminate(5 * time.Second)
	} else {
		sc.Close()
	}
	<-sc.done
	st.leftClean.Add(1)
}

// closeAll has every online user leave cleanly.
func (st *soakState) closeAll(ctx context.Context) {
	inTurn(context.WithoutCancel(ctx), len(st.users), st.cfg.concurrency, func(i int) {
		if sc, _ := st.users[i].current(); sc != nil {
			st.leave(sc)
		}
	})
}

// drain waits until every message that must arrive has, or o.drain ends.
func (st *soakState) drain(ctx context.Context) {
	deadline := time.Now().Add(st.o.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st.mustArrive() == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustArrive counts the messages still pending that no cut connection
// excuses.
func (st *soakState) mustArrive() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, p := range st.pending {
		if !p.from.cut(p.fromGen) && !p.to.unsure(p.toGen, p.at) {
			n++
		}
	}
	for _, p := range st.roomPending {
		if !p.from.cut(p.fromGen) {
			n++
		}
	}
	return n
}

// read handles what one connection receives until it ends.
func (st *soakState) read(sc *soakConn) {
	defer close(sc.done)
	for {
		if err := sc.read(); err != nil {
			if !sc.closing.Load() {
				st.serverClosed.Add(1)
				st.fail("connection ended", err)
				st.offline(sc, false)
			}
			return
		}
		for el := sc.f.next(); el != nil; el = sc.f.next() {
			st.element(sc, el)
		}
		if sc.f.closed {
			if !sc.closing.Load() {
				st.serverClosed.Add(1)
				st.fail("stream ended", errors.New("by the server"))
				st.offline(sc, false)
				sc.Close()
			}
			return
		}
	}
}

var (
	soakChatMark = []byte(soakChatMarker)
	soakRoomMark = []byte(soakRoomMarker)
)

func (st *soakState) element(sc *soakConn, el []byte) {
	switch {
	case bytes.HasPrefix(el, []byte("<message")):
		st.message(sc, el)
	case bytes.HasPrefix(el, []byte("<presence")):
		st.presRecv.Add(1)
		for _, r := range sc.u.rooms {
			if !bytes.Contains(el, []byte(r+"/"+sc.u.name+"'")) && !bytes.Contains(el, []byte(r+"/"+sc.u.name+`"`)) {
				continue
			}
			if isError(el) {
				select {
				case sc.joined <- joinResult{room: r, err: string(el)}:
				default:
				}
			} else if hasCode(el, "110") && !bytes.Contains(el, []byte("unavailable")) {
				select {
				case sc.joined <- joinResult{room: r, created: hasCode(el, "201")}:
				default:
				}
			}
		}
	case bytes.HasPrefix(el, []byte("<iq")):
		st.iq(sc, el)
	case bytes.HasPrefix(el, []byte("<stream:error")):
		st.fail("stream error", errors.New(string(el)))
	}
}

func (st *soakState) message(sc *soakConn, el []byte) {
	mark, room := bytes.Index(el, soakChatMark), false
	if mark < 0 {
		if mark = bytes.Index(el, soakRoomMark); mark < 0 {
			return // a room's subject, and the like
		}
		room = true
	}
	if len(el)-mark < soakMarkerLen {
		return
	}
	id, ok := parseHex(el[mark+3 : mark+soakMarkerLen])
	if !ok {
		return
	}
	if isError(el) {
		n := new(node)
		cond := "unparsed"
		if xml.Unmarshal(el, n) == nil {
			if e := n.child("error"); e != nil {
				cond = e.condition()
			}
		}
		if room {
			st.roomErrors.Add(1)
		} else {
			st.chatErrors.Add(1)
		}
		st.fail("message error", errors.New(cond))
		return
	}
	st.mu.Lock()
	var p pendingMsg
	if room {
		p, ok = st.roomPending[id]
		if ok && p.from == sc.u {
			delete(st.roomPending, id)
		} else {
			ok = false
		}
	} else if p, ok = st.pending[id]; ok {
		delete(st.pending, id)
	}
	st.mu.Unlock()
	switch {
	case room && ok:
		st.roomEcho.Add(1)
	case room:
		st.roomDeliv.Add(1)
	case !ok:
		st.chatDup.Add(1)
	default:
		if p.to != sc.u {
			st.misrouted.Add(1)
		}
		st.chatRecv.Add(1)
		st.hist.record(time.Since(p.at))
	}
}

// iq answers the server's pings (XEP-0199) and notes the answers to ours.
func (st *soakState) iq(sc *soakConn, el []byte) {
	n := new(node)
	if err := xml.Unmarshal(el, n); err != nil {
		st.fail("iq", err)
		return
	}
	switch typ, id := n.attr("type"), n.attr("id"); {
	case typ == "get" && n.child("ping") != nil:
		st.pings.Add(1)
		sc.write([]byte("<iq type='result' id='" + xmlEscape(id) + "' to='" + xmlEscape(n.attr("from")) + "'/>"))
	case id == "soak-bye":
		sc.byeOnce.Do(func() { close(sc.bye) })
	case id == "soak-config":
		j := joinResult{room: n.attr("from"), configured: true}
		if typ != "result" {
			j.err = n.String()
		}
		select {
		case sc.joined <- j:
		default:
		}
	case typ == "error":
		st.fail("iq "+id, errors.New(n.String()))
	}
}

// xmlEscape escapes an attribute value the server sent, for an answer.
func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
