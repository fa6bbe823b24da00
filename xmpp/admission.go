package xmpp

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// admission decides, per address and before any TLS work, whether a new
// connection may start: a token bucket bounds how fast one address opens
// connections, and a cap bounds how many of its connections may be
// unauthenticated at once. Signed-in sessions do not count against an
// address (a whole office behind one NAT address, or every web client behind
// an untrusted proxy, must be able to sign in); they are bounded per account
// instead (Server.MaxSessionsPerAccount).
type admission struct {
	mu     sync.Mutex
	byAddr map[string]*addrState
	// sweep is when idle entries were last dropped.
	sweep time.Time
}

type addrState struct {
	pending int // connections not yet authenticated
	tokens  float64
	last    time.Time
}

// refusal says why a connection was not admitted; "" means it was.
type refusal string

const (
	tooFast    refusal = "too many new connections from your address; try again later"
	tooPending refusal = "too many connections from your address that have not signed in"
)

// addrKey is the address that limits apply to: the IPv4 address, or the
// IPv6 /64 network, which a single host or customer usually has to itself
// and can take any address from.
func addrKey(a net.Addr) string {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	} else {
		return hostOf(a)
	}
	return keyOfIP(ip)
}

func keyOfIP(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// connect charges a new connection from addr to its rate (rate per second,
// burst at once); a rate of zero or less means no limit.
func (a *admission) connect(addr string, rate, burst float64, now time.Time) refusal {
	if rate <= 0 {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state(addr, now)
	if burst < 1 {
		burst = 1
	}
	if st.last.IsZero() {
		st.tokens = burst
	} else {
		st.tokens = min(burst, st.tokens+now.Sub(st.last).Seconds()*rate)
	}
	st.last = now
	if st.tokens < 1 {
		return tooFast
	}
	st.tokens--
	return ""
}

// acquire counts an unauthenticated connection from addr, unless max are
// there already (max of zero or less: no limit). Every successful acquire is
// matched by one release.
func (a *admission) acquire(addr string, max int, now time.Time) refusal {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state(addr, now)
	if max > 0 && st.pending >= max {
		return tooPending
	}
	st.pending++
	return ""
}

// release ends an acquire: the connection authenticated or closed.
func (a *admission) release(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.byAddr[addr]; st != nil && st.pending > 0 {
		st.pending--
	}
}

// pending is how many unauthenticated connections addr has.
func (a *admission) pending(addr string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.byAddr[addr]; st != nil {
		return st.pending
	}
	return 0
}

// state returns addr's entry, making it if need be. Now and then it drops the
// entries of addresses that have nothing pending and have not connected for
// a minute (their bucket is full again at any sane rate), so that the map
// holds only recently active addresses. Called with mu held.
func (a *admission) state(addr string, now time.Time) *addrState {
	if a.byAddr == nil {
		a.byAddr = make(map[string]*addrState)
	}
	if now.Sub(a.sweep) > time.Minute {
		a.sweep = now
		for k, st := range a.byAddr {
			if st.pending == 0 && now.Sub(st.last) > time.Minute {
				delete(a.byAddr, k)
			}
		}
	}
	st := a.byAddr[addr]
	if st == nil {
		st = &addrState{}
		a.byAddr[addr] = st
	}
	return st
}

// admit applies both limits to a connection accepted on a listener of ours.
// On success the caller owns one pending slot of addr.
func (s *Server) admit(addr string) refusal {
	now := time.Now()
	set := s.cur()
	if r := s.admission.connect(addr, set.ConnRatePerIP, float64(set.ConnBurstPerIP), now); r != "" {
		return r
	}
	return s.admission.acquire(addr, set.MaxUnauthPerIP, now)
}

// refuse closes a connection that was not admitted. A plain TCP client stream
// is told why, with a stream error it can show (RFC 6120 §4.9.1.2: our
// header first); the write goes into the new socket's empty buffer, so it
// does not hold up the accept loop. Connections that start with TLS are
// closed at once: answering would mean doing the handshake that the limit
// is there to avoid.
func (s *Server) refuse(c net.Conn, mode connMode, why refusal) {
	s.log.Info("connection refused", "remote", c.RemoteAddr().String(), "reason", string(why))
	if mode == plainTCP {
		b := appendStreamHeader(nil, s.Domain, randomID())
		b = StreamError{Condition: PolicyViolation, Text: string(why)}.Append(b)
		b = append(b, "</stream:stream>"...)
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(b)
	}
	c.Close()
}

// LimitListener applies the per-address connection rate to l at accept,
// before TLS or HTTP: for the web listener, whose WebSocket and BOSH streams
// are then counted as unauthenticated by ServeConn. Serve it with
// http.Server.ConnContext set to HTTPConnContext, so that the first stream a
// connection starts is known to be paid for (AdmitWebStream).
func (s *Server) LimitListener(l net.Listener) net.Listener {
	s.init()
	return &limitListener{Listener: l, srv: s}
}

type limitListener struct {
	net.Listener
	srv *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		s := l.srv
		set := s.cur()
		if why := s.admission.connect(addrKey(c.RemoteAddr()), set.ConnRatePerIP, float64(set.ConnBurstPerIP), time.Now()); why != "" {
			s.log.Info("connection refused", "remote", c.RemoteAddr().String(), "reason", string(why))
			c.Close()
			continue
		}
		return &admittedConn{Conn: c}, nil
	}
}

// admittedConn is a connection that paid the connection rate at accept. Its
// first web stream (a BOSH session or a WebSocket) is what it paid for; every
// further one on it (HTTP keep-alive, HTTP/2) pays again.
type admittedConn struct {
	net.Conn
	streamed atomic.Bool
}

// ReadFrom keeps the TCP connection's sendfile for files served over plain
// HTTP (net/http looks for io.ReaderFrom on the connection).
func (c *admittedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

// CloseWrite keeps net/http's half-close before it closes a connection
// whose request body it did not read (a refused upload): without it the
// unread bytes make the close a reset, which may lose the response.
func (c *admittedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type admittedKey struct{}

// HTTPConnContext is for http.Server.ConnContext on a LimitListener: it
// lets AdmitWebStream find the connection a request came on.
func HTTPConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if ac, ok := c.(*admittedConn); ok {
		return context.WithValue(ctx, admittedKey{}, ac)
	}
	return ctx
}

// AdmitWebStream charges a stream that a web transport is about to start
// for r (a BOSH session creation, a WebSocket upgrade) to the connection
// rate of client, the client's address (WebPolicy.Client). Without it, one
// kept-alive HTTP connection could start any number of streams while
// paying for one connection. The first stream on a connection admitted by
// LimitListener, from the address that connection paid for, is free; any
// other pays. False with the <policy-violation/> a refused TCP stream gets
// when the rate is spent.
func (s *Server) AdmitWebStream(r *http.Request, client net.Addr) (StreamError, bool) {
	s.init()
	key := addrKey(client)
	if ac, _ := r.Context().Value(admittedKey{}).(*admittedConn); ac != nil &&
		addrKey(ac.RemoteAddr()) == key && ac.streamed.CompareAndSwap(false, true) {
		return StreamError{}, true
	}
	set := s.cur()
	if why := s.admission.connect(key, set.ConnRatePerIP, float64(set.ConnBurstPerIP), time.Now()); why != "" {
		s.log.Info("web stream refused", "remote", client.String(), "reason", string(why))
		return StreamError{Condition: PolicyViolation, Text: string(why)}, false
	}
	return StreamError{}, true
}
