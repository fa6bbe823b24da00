package xmpp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultMaxStanzaSize      = 256 << 10
	DefaultNegotiationTimeout = 30 * time.Second
	DefaultPingInterval       = 2 * time.Minute
	DefaultPingTimeout        = 30 * time.Second
	// DefaultQueueSize: a member of a large team gets every colleague's
	// presence at once when signing in; QueueBytes bounds the memory.
	DefaultQueueSize              = 5000
	DefaultQueueBytes             = 1 << 20
	DefaultMaxUnauthPerIP         = 32
	DefaultConnRatePerIP          = 10
	DefaultConnBurstPerIP         = 100
	DefaultTLSHandshakeTimeout    = 10 * time.Second
	DefaultMaxSessionsPerAccount  = 10
	DefaultAuthFailureDelay       = time.Second
	DefaultMaxAuthFailures        = 5
	DefaultMaxAccountAuthFailures = 10
	DefaultAuthFailureWindow      = 10 * time.Minute
)

// A Server serves XMPP client streams for one domain. Set its fields, then
// call ServeC2S or ServeDirectTLS for each listener. The zero values of the
// limits select the defaults above; a negative value switches a limit off
// where that makes sense (stanza size, connections and failures per address,
// failure delay, keepalive pings) and selects the default elsewhere (queue
// size, timeouts). The fields are read when serving starts; the limits
// that may change while it runs are changed with Reconfigure (Settings).
type Server struct {
	// Domain is the XMPP domain served, e.g. "example.com".
	Domain string
	// TLSConfig holds the certificate; required.
	TLSConfig *tls.Config
	// Store keeps accounts and everything durable.
	Store storage.Store
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Modules add features; each is registered once, when serving starts.
	Modules []Module
	// SessionRegistry records sessions and their presence: nil means one in
	// memory for this process; a Redis one is shared by several nodes.
	// NodeName names this process in it (default: the registry's own).
	SessionRegistry storage.Registry
	NodeName        string
	// Bus, with a shared SessionRegistry, carries stanzas for sessions on
	// other nodes to them (cluster.go); nil: sessions elsewhere are not
	// reached.
	Bus Bus
	// Locker serialises work on one account (its roster, its offline
	// queue); nil means locks in this process.
	Locker Locker
	// SMResumeTimeout is how long a session whose connection broke waits
	// for its client to resume it (XEP-0198); negative: no resumption.
	// SMMaxUnacked bounds the stanzas a session keeps for its client to
	// acknowledge; past it the session ends with <resource-constraint/>.
	SMResumeTimeout time.Duration
	SMMaxUnacked    int

	// AllowPlaintextAuth offers SASL before TLS; off by default.
	AllowPlaintextAuth bool
	// SCRAMIterations is the PBKDF2 iteration count new credentials get
	// (auth.scram_iterations); an account that does not exist appears to
	// have it. Zero: DefaultIterations.
	SCRAMIterations int
	// Tokens, when set, lets users sign in with a token their app issued,
	// sent as the SASL PLAIN password (so only over TLS); a password that is
	// not shaped like a JWT is checked as a password. Nil: passwords only.
	Tokens TokenVerifier
	// MaxStanzaSize bounds one top-level element, in bytes.
	MaxStanzaSize int
	// ReadRate limits bytes read per second from one connection (0: none),
	// with ReadBurst bytes allowed at once.
	ReadRate, ReadBurst int
	// MaxUnauthPerIP limits the connections from one address (an IPv6
	// /64) that have not authenticated yet, counted from accept, before any
	// TLS work; one more is refused. Signed-in sessions do not count.
	MaxUnauthPerIP int
	// ConnRatePerIP limits how many connections per second one address may
	// open on every listener, with ConnBurstPerIP at once; more are closed
	// at accept. A web stream (BOSH session, WebSocket) started on an
	// HTTP connection that already started one counts as a new connection
	// (AdmitWebStream).
	ConnRatePerIP  float64
	ConnBurstPerIP int
	// TLSHandshakeTimeout bounds a TLS handshake (direct TLS or STARTTLS),
	// within the negotiation timeout.
	TLSHandshakeTimeout time.Duration
	// MaxSessionsPerAccount limits the resources bound to one account at
	// once; binding one more is refused with <resource-constraint/> (RFC
	// 6120 §7.6.2.1). Replacing a resource of the same name always works.
	MaxSessionsPerAccount int
	// NegotiationTimeout closes streams that are not ready in time.
	NegotiationTimeout time.Duration
	// PingInterval is how long a session may be silent before the server
	// pings it; PingTimeout how long the answer may take.
	PingInterval, PingTimeout time.Duration
	// QueueSize is the outbound queue of one session, in stanzas, and
	// QueueBytes in bytes: a client that lets either fill up is disconnected
	// with <resource-constraint/>.
	QueueSize  int
	QueueBytes int
	// PresenceLinger is how long presence may wait in a session's queue to
	// share a write with what follows (DefaultPresenceLinger in session.go says why):
	// zero selects DefaultPresenceLinger, a negative value writes it at
	// once.
	PresenceLinger time.Duration
	// AuthFailureDelay is the delay before the first failed authentication is
	// answered; it doubles with each further failure from the address.
	AuthFailureDelay time.Duration
	// MaxAuthFailures from one address within AuthFailureWindow block new
	// attempts from it until the window has passed.
	MaxAuthFailures   int
	AuthFailureWindow time.Duration
	// MaxAccountAuthFailures on one existing account within
	// AuthFailureWindow, from any addresses, lock it: further attempts
	// fail without the password being checked, except from the addresses
	// its owner last signed in from, until the window has passed. It
	// bounds guessing spread over many addresses.
	MaxAccountAuthFailures int

	// Version is reported by software version queries.
	Version string

	// Metrics, when set, is told what the core counts (metrics.go); nil:
	// nothing is counted.
	Metrics Metrics

	// Federation (ServeS2S). S2SRoutes maps remote domains to host:port,
	// tried before DNS. S2SAllow, when not empty, lists the only domains
	// federated with; S2SDeny lists domains never federated with;
	// S2SDisabled turns federation off. DialbackSecret keys dialback
	// (XEP-0185); empty: random at each start, which is fine for one node
	// but must be shared by the nodes of a cluster.
	S2SRoutes         map[string]string
	S2SAllow, S2SDeny []string
	S2SDisabled       bool
	DialbackSecret    []byte
	// S2SIdleTimeout closes outgoing server-to-server connections unused
	// for that long; S2SConnectTimeout bounds setting one up.
	S2SIdleTimeout, S2SConnectTimeout time.Duration
	// S2SRootCAs verify the certificates of other servers: one valid for
	// the peer's domain lets it authenticate with SASL EXTERNAL instead of
	// dialback. Nil: the system's roots.
	S2SRootCAs *x509.CertPool

	// Bounds on outgoing federation (s2s_limit.go, defaults there).
	// S2SMaxConnecting bounds the outgoing streams being set up at once
	// (DNS lookups, connecting, TLS, authentication), server-wide, and
	// S2SMaxConnectingPerSender those one sender starts (a local account;
	// the server itself for its own stanzas and dialback checks). Attempts
	// past them wait, S2SMaxWaiting in all and S2SMaxWaitingPerSender per
	// sender; past that the stanza bounces at once. S2SQueueSize bounds the
	// stanzas queued on one outgoing stream.
	S2SMaxConnecting, S2SMaxConnectingPerSender int
	S2SMaxWaiting, S2SMaxWaitingPerSender       int
	S2SQueueSize                                int
	s2sDials                                    dialLimiter
	// settings are what Reconfigure changes (settings.go).
	settings atomic.Pointer[Settings]

	once      sync.Once
	setupOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	// negCtx ends when Shutdown stops the streams still negotiating, before
	// it closes the sessions; ctx ends after those have ended.
	negCtx          context.Context
	stopNegotiating context.CancelFunc
	log             *slog.Logger
	router          *Router
	// domainJID is Domain as a JID, parsed once.
	domainJID jid.JID
	// regMu guards what modules register: IQ and element handlers, disco
	// features, identities and items.
	regMu      sync.RWMutex
	handlers   map[handlerKey]IQHandler
	elements   map[xml.Name]ElementHandler
	features   map[Target][]string
	identities map[Target][]Identity
	infoForms  map[Target][]*Element
	items      map[Target][]ItemsSource
	nodes      map[Target][]NodeSource
	// httpMux serves what modules add to the web listener (HandleHTTP).
	httpMux *http.ServeMux
	// components serve domains of their own (AddComponent).
	components map[string]Component
	// streamFeatures are announced after authentication.
	streamFeatures []mxmpp.StreamFeature
	// preAuth answers IQs before authentication (HandlePreAuthIQ), or nil.
	preAuth        *PreAuthIQ
	hooks          hooks
	dialbackSecret []byte
	// authSecret keys what unknown accounts appear to have (scram.go).
	authSecret []byte
	smTables
	registry storage.Registry
	node     string
	// clusterOps handle the operations other nodes send (HandleClusterOp).
	clusterOps    map[string]func(context.Context, *Element)
	calls         clusterCalls
	locker        Locker
	s2sMu         sync.Mutex
	outgoingConns map[string]*s2sOut
	s2sInStreams  atomic.Int64 // streams other servers opened (Stats)
	admission     admission
	failures      failureTracker // by address
	// accountFailures counts failed attempts on existing accounts, from
	// anywhere; knownAddrs are where each account signed in from.
	accountFailures failureTracker
	knownAddrs      knownAddrs
	wg              sync.WaitGroup
	mu              sync.Mutex
	lns             []net.Listener
	closing         bool
	started         time.Time
}

func (s *Server) init() {
	s.once.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.negCtx, s.stopNegotiating = context.WithCancel(s.ctx)
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.Default()
		}
		s.started = time.Now()
		s.domainJID, _ = jid.New("", s.Domain, "")
		s.router = newRouter(s)
		s.setup()
		s.initShared()
		s.initSettings()
		s.smSessions = make(map[string]*Session)
		s.smGone = make(map[string]smGone)
		s.PresenceLinger = orDefault(s.PresenceLinger, DefaultPresenceLinger)
		s.PingInterval = orDefault(s.PingInterval, DefaultPingInterval)
		s.PingTimeout = positive(s.PingTimeout, DefaultPingTimeout)
		if s.Version == "" {
			s.Version = "dev"
		}
		s.SCRAMIterations = positive(s.SCRAMIterations, DefaultIterations)
		s.authSecret = s.secret("scram-unknown-accounts")
		s.initS2S()
		s.registerCore()
		for _, m := range s.Modules {
			m.Register(s)
		}
		if s.PingInterval > 0 {
			s.wg.Add(1)
			go s.keepalive()
		}
	})
}

// setup makes the registries; the module API may be called before serving
// starts, and from Register (inside init), so it must not need init.
func (s *Server) setup() {
	s.setupOnce.Do(func() {
		s.handlers = make(map[handlerKey]IQHandler)
		s.elements = make(map[xml.Name]ElementHandler)
		s.features = make(map[Target][]string)
		s.identities = make(map[Target][]Identity)
		s.infoForms = make(map[Target][]*Element)
		s.items = make(map[Target][]ItemsSource)
		s.nodes = make(map[Target][]NodeSource)
		s.httpMux = http.NewServeMux()
	})
}

// secret is the store's secret called name, the same on every node and
// across restarts; if the store cannot give it, a random one for this
// process, with a warning.
func (s *Server) secret(name string) []byte {
	if s.Store == nil { // a bare server in a benchmark
		b := make([]byte, 32)
		rand.Read(b)
		return b
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	b, err := s.Store.Secret(ctx, name, 32)
	if err != nil {
		s.log.Warn("no stored secret; using one for this process only", "name", name, "err", err)
		b = make([]byte, 32)
		rand.Read(b)
	}
	return b
}

// positive is orDefault for settings that cannot be switched off.
func positive[T int | float64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func orDefault[T int | float64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Go runs fn in a goroutine that Shutdown waits for, with the server's
// context: a module's background work (a writer that must flush what it
// holds, a pruner) ends before Shutdown returns and the store is closed.
// fn should return soon after ctx is done. Call it from Register, or from
// code that runs while the server serves.
func (s *Server) Go(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// Context is cancelled when the server shuts down; modules bind their
// goroutines to it. Context, Log, Router and Started are valid from the time
// the modules are registered.
func (s *Server) Context() context.Context { return s.ctx }

// Log returns the server's logger.
func (s *Server) Log() *slog.Logger { return s.log }

// Router returns the server's router.
func (s *Server) Router() *Router { return s.router }

// Started is when the server started serving.
func (s *Server) Started() time.Time { return s.started }

// ServeC2S accepts client connections on l: plain TCP upgraded with STARTTLS
// (RFC 6120 §5). It returns when l is closed or the server shuts down.
func (s *Server) ServeC2S(l net.Listener) error { return s.serve(l, plainTCP) }

// ServeDirectTLS accepts client connections that start with TLS (XEP-0368).
func (s *Server) ServeDirectTLS(l net.Listener) error { return s.serve(l, directTLS) }

func (s *Server) serve(l net.Listener, mode connMode) error {
	s.init()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.lns = append(s.lns, l)
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		// Per-address limits apply here, before a goroutine, a TLS
		// handshake or a buffer is spent on the connection.
		addr := addrKey(c.RemoteAddr())
		if why := s.admit(addr); why != "" {
			s.refuse(c, mode, why)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleConn(c, mode, addr)
		}()
	}
}

// ErrServerClosed is returned by the Serve methods after Shutdown.
var ErrServerClosed = errors.New("xmpp: server closed")

// Shutdown stops accepting connections, runs the modules' shutdown hooks,
// closes every stream with <system-shutdown/>, and waits for the
// connections to end or ctx to expire. It returns by ctx's deadline
// whatever a module is doing: the hooks get at most half the time left, and
// what still runs after the deadline is left behind (the process is about
// to exit).
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closing = true
	for _, l := range s.lns {
		l.Close()
	}
	s.mu.Unlock()
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		s.hooks.runShutdown()
	}()
	hctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		hctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(d)/2))
		defer cancel()
	}
	select {
	case <-hooksDone:
	case <-hctx.Done():
		s.log.Warn("shutdown: modules' shutdown hooks still running; closing the streams anyway")
	}
	// Negotiations stop first (handleConn), so that no session is bound
	// after the ones closed below were collected.
	s.stopNegotiating()
	var sessions []*Session
	s.router.each(func(sess *Session) {
		sessions = append(sessions, sess)
		sess.Close(&StreamError{Condition: SystemShutdown})
	})
	// The server's context lives on until the sessions have ended: a
	// stanza a reader handles meanwhile, and what each session's client
	// never acknowledged (redeliver), go to their recipients or to offline
	// storage while storage is still open (issue 21).
	for i, sess := range sessions {
		select {
		case <-sess.ended:
		case <-ctx.Done():
			left := 0
			for _, o := range sessions[i:] {
				select {
				case <-o.ended:
				default:
					left++
				}
			}
			s.log.Warn("shutdown: sessions still ending at the deadline; what their clients had not acknowledged may be lost", "sessions", left)
		}
		if ctx.Err() != nil {
			break
		}
	}
	s.cancel()
	s.closeS2S()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// delay is the growing delay before answering the n-th failure.
func (s *Server) authDelay(n int) time.Duration {
	d := s.cur().AuthFailureDelay
	if d < 0 {
		return 0
	}
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return d
}
