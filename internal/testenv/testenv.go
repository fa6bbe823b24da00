// Package testenv is the one place for test helpers shared across packages:
// it starts a real xmppd on loopback ports on each storage backend, creates
// accounts, and connects scripted clients (mellium.im/xmpp as the
// well-behaved client, raw TCP for bad input).
package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/bosh"
	"github.com/xmppd/xmppd/internal/web"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/sqlite"
	"github.com/xmppd/xmppd/xmpp"
)

// Domain is the domain test servers serve.
const Domain = "localhost"

// Timeout bounds every wait in the helpers.
const Timeout = 20 * time.Second

// Backends are the storage backends every integration test runs on.
var Backends = []string{"sqlite", "postgres"}

// EachBackend runs f as a subtest for each storage backend.
func EachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	for _, b := range Backends {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

// OpenStore opens a fresh, empty store of the named backend for t.
func OpenStore(t testing.TB, backend string) storage.Store {
	t.Helper()
	ctx := context.Background()
	var (
		st  storage.Store
		err error
	)
	switch backend {
	case "sqlite":
		st, err = sqlite.Open(ctx, t.TempDir()+"/xmppd.db")
	case "postgres":
		st, err = postgres.Open(ctx, pgtest.DSN(t))
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	if err != nil {
		t.Fatalf("open %s store: %v", backend, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Server is a running xmppd.
type Server struct {
	*xmpp.Server
	// C2S and DirectTLS are the listening addresses, S2S the federation
	// listener's.
	C2S, DirectTLS, S2S string
	// HTTP is the address of the web listener (WebSocket at /ws, BOSH at
	// /http-bind, the web client at /chat/); Web and BOSH are its settings,
	// which a test may change before it connects. Loopback counts as a
	// secure network, as with the default configuration.
	HTTP string
	Web  *xmpp.WebPolicy
	BOSH *bosh.Handler
	// Roots trusts the server's certificate; CertPEM is that certificate.
	Roots   *x509.CertPool
	CertPEM []byte
}

// Start runs a server on the named backend with test-friendly limits (small
// authentication delays); configure adjusts it before it starts.
func Start(t testing.TB, backend string, configure ...func(*xmpp.Server)) *Server {
	t.Helper()
	return start(t, backend, listen(t), nil, configure...)
}

// StartWithS2S is Start with the federation listener given.
func StartWithS2S(t testing.TB, backend string, s2s net.Listener, configure ...func(*xmpp.Server)) *Server {
	t.Helper()
	return start(t, backend, s2s, nil, configure...)
}

// StartPair runs two servers federated with each other by static routes:
// one for Domain and one for domain, each with its own store of backend.
// configure applies to both.
func StartPair(t testing.TB, backend, domain string, configure ...func(*xmpp.Server)) (local, remote *Server) {
	t.Helper()
	la, lb := listen(t), listen(t)
	local = start(t, backend, la, nil, append(configure, func(srv *xmpp.Server) {
		srv.S2SRoutes = map[string]string{domain: lb.Addr().String(), "conference." + domain: lb.Addr().String()}
	})...)
	remote = start(t, backend, lb, nil, append(configure, func(srv *xmpp.Server) {
		srv.Domain = domain
		srv.S2SRoutes = map[string]string{Domain: la.Addr().String(), "conference." + Domain: la.Addr().String()}
	})...)
	return local, remote
}

// StartWithHTTP is Start with the web listener given, for a test that
// must know its address before the server starts (the upload service's
// public URL).
func StartWithHTTP(t testing.TB, backend string, httpL net.Listener, configure ...func(*xmpp.Server)) *Server {
	t.Helper()
	return start(t, backend, listen(t), httpL, configure...)
}

// Listen is a listener on a free loopback port, closed when t ends.
func Listen(t testing.TB) net.Listener { return listen(t) }

func start(t testing.TB, backend string, s2s, httpL net.Listener, configure ...func(*xmpp.Server)) *Server {
	t.Helper()
	certPEM, keyPEM, err := xmpp.SelfSignedCert(Domain)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	level := slog.LevelWarn
	if os.Getenv("XMPPD_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	srv := &xmpp.Server{
		Domain:           Domain,
		TLSConfig:        xmpp.TLSConfig(cert),
		Store:            OpenStore(t, backend),
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		AuthFailureDelay: 5 * time.Millisecond,
		Version:          "test",
	}
	for _, f := range configure {
		f(srv)
	}
	if srv.Modules == nil {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store})
	}
	s := &Server{Server: srv, Roots: roots, CertPEM: certPEM}
	l1 := listen(t)
	l2 := listen(t)
	l3 := httpL
	if l3 == nil {
		l3 = listen(t)
	}
	s.C2S, s.DirectTLS, s.HTTP, s.S2S = l1.Addr().String(), l2.Addr().String(), l3.Addr().String(), s2s.Addr().String()
	s.Web = &xmpp.WebPolicy{SecureNetworks: xmpp.LoopbackNetworks}
	s.BOSH = &bosh.Handler{}
	hs := &http.Server{Handler: web.Handler(web.Options{Server: srv, Policy: s.Web, BOSH: s.BOSH, ClientDir: WebDir()}), ConnContext: xmpp.HTTPConnContext}
	t.Cleanup(func() { hs.Close() })
	go srv.ServeC2S(l1)
	go srv.ServeDirectTLS(l2)
	go hs.Serve(srv.LimitListener(l3))
	go srv.ServeS2S(s2s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			// Say what still runs: the goroutines of the server's packages.
			var b strings.Builder
			pprof.Lookup("goroutine").WriteTo(&b, 2)
			var stuck []string
			for _, g := range strings.Split(b.String(), "\n\n") {
				if strings.Contains(g, "xmppd/xmppd/") && !strings.Contains(g, "testing.tRunner") {
					stuck = append(stuck, g)
				}
			}
			t.Errorf("shutdown: %v; goroutines of xmppd still running:\n%s", err, strings.Join(stuck, "\n\n"))
		}
	})
	return s
}

// WebDir is the repository's web folder (web client, npm packages).
func WebDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "web")
}

func listen(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// AddUser creates an account and returns its bare JID.
func (s *Server) AddUser(t testing.TB, local, password string) jid.JID {
	t.Helper()
	j := jid.MustParse(local + "@" + s.Server.Domain)
	creds, err := xmpp.NewCredentials(password, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.CreateUser(context.Background(), j.String(), creds); err != nil {
		t.Fatal(err)
	}
	return j
}

// ClientTLS is a TLS configuration that trusts the test server.
func (s *Server) ClientTLS() *tls.Config {
	return &tls.Config{ServerName: Domain, RootCAs: s.Roots, MinVersion: tls.VersionTLS12}
}

// Client is a well-behaved test client, with a goroutine handing every
// stanza it receives to a channel.
type Client struct {
	conn net.Conn
	JID  jid.JID
	In   chan *xmpp.Element
	// Err receives the error that ended the input stream (nil for a clean
	// end); a stream error reads "stream error: CONDITION".
	Err chan error
}

// Close closes the client's stream and connection.
func (c *Client) Close() error {
	c.conn.Write([]byte("</stream:stream>"))
	return c.conn.Close()
}

// Abort cuts the connection without closing the stream, as a crash or a
// lost network would.
func (c *Client) Abort() {
	if tc, ok := c.conn.(*tls.Conn); ok {
		tc.NetConn().Close()
		return
	}
	c.conn.Close()
}

// Dial connects over STARTTLS, authenticates with PLAIN and binds resource
// (server-generated if empty), negotiating by hand so that every step is
// what RFC 6120 says rather than what a client library does.
func (s *Server) Dial(t testing.TB, user jid.JID, password, resource string) *Client {
	t.Helper()
	c, err := s.negotiate(user, password, resource)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// DialFrom is Dial from a given loopback address (127.0.0.0/8), so that
// per-address limits can be tested without touching other clients.
func (s *Server) DialFrom(t testing.TB, ip string, user jid.JID, password, resource string) (*Client, error) {
	t.Helper()
	c, err := s.negotiateFrom(ip, user, password, resource)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func (s *Server) negotiate(user jid.JID, password, resource string) (*Client, error) {
	return s.negotiateFrom("127.0.0.1", user, password, resource)
}

func dialFrom(ip, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: Timeout}
	return d.Dial("tcp", addr)
}

func (s *Server) negotiateFrom(ip string, user jid.JID, password, resource string) (*Client, error) {
	conn, tc, d, _, err := s.startTLS(ip)
	if err != nil {
		return nil, err
	}
	c, err := login(tc, d, s.header(), user, password, resource)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// login authenticates with PLAIN on a stream whose features d has just
// read, binds resource, and starts the client's reader.
func login(conn net.Conn, d *xml.Decoder, header string, user jid.JID, password, resource string) (*Client, error) {
	io.WriteString(conn, PlainAuth(user.Localpart(), password))
	if el, err := next(d); err != nil || el.Local != "success" {
		return nil, fmt.Errorf("auth: got %v, %v", el, err)
	}
	d, err := restart(conn, header)
	if err != nil {
		return nil, fmt.Errorf("stream after auth: %w", err)
	}
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	io.WriteString(conn, `<iq type="set" id="bind"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">`+res+`</bind></iq>`)
	el, err := next(d)
	if err != nil || el.Get("type") != "result" {
		return nil, fmt.Errorf("bind: got %v, %v", el, err)
	}
	full, err := jid.Parse(el.Child("", "bind").Child("", "jid").Text())
	if err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	c := &Client{conn: conn, JID: full, In: make(chan *xmpp.Element, 256), Err: make(chan error, 1)}
	go c.read(d)
	return c, nil
}

// startTLS connects from ip, negotiates STARTTLS and reads the features of
// the encrypted stream. The deadline of Timeout stays set on conn.
func (s *Server) startTLS(ip string) (conn net.Conn, tc *tls.Conn, d *xml.Decoder, features *xmpp.Element, err error) {
	return startTLS(ip, s.C2S, s.header(), s.ClientTLS())
}

// startTLS opens a stream from ip to the client listener addr with the
// stream header header, and negotiates TLS with conf.
func startTLS(ip, addr, header string, conf *tls.Config) (conn net.Conn, tc *tls.Conn, d *xml.Decoder, features *xmpp.Element, err error) {
	conn, err = dialFrom(ip, addr)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(Timeout))
	fail := func(step string, err error) (net.Conn, *tls.Conn, *xml.Decoder, *xmpp.Element, error) {
		conn.Close()
		return nil, nil, nil, nil, fmt.Errorf("%s: %w", step, err)
	}
	if d, err = restart(conn, header); err != nil {
		return fail("stream", err)
	}
	if _, err := io.WriteString(conn, `<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`); err != nil {
		return fail("starttls", err)
	}
	if el, err := next(d); err != nil || el.Local != "proceed" {
		return fail("starttls", fmt.Errorf("got %v, %v", el, err))
	}
	tc = tls.Client(conn, conf)
	if d, features, err = restartFeatures(tc, header); err != nil {
		return fail("stream after TLS", err)
	}
	return conn, tc, d, features, nil
}

// PlainAuth is a SASL PLAIN <auth/> element.
func PlainAuth(user, password string) string {
	return `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + `</auth>`
}

// TLSStream is an encrypted stream before authentication, for tests that
// script SASL themselves.
type TLSStream struct {
	*tls.Conn
	// Features are the stream features offered after TLS.
	Features *xmpp.Element
	d        *xml.Decoder
}

// StartTLS opens a stream from ip and negotiates TLS on it.
func (s *Server) StartTLS(t testing.TB, ip string) *TLSStream {
	t.Helper()
	_, tc, d, features, err := s.startTLS(ip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return &TLSStream{Conn: tc, Features: features, d: d}
}

// StartTLSAt opens a stream for the domain Domain to the client listener
// addr of a server running elsewhere (another process), and negotiates TLS
// with conf.
func StartTLSAt(t testing.TB, addr string, conf *tls.Config) *TLSStream {
	t.Helper()
	_, tc, d, features, err := startTLS("127.0.0.1", addr, Header, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return &TLSStream{Conn: tc, Features: features, d: d}
}

// Next reads the next top-level element; a stream error is returned as an
// error reading "stream error: CONDITION".
func (ts *TLSStream) Next() (*xmpp.Element, error) { return next(ts.d) }

// restart sends a stream header on w and reads the server's header and
// features from a new decoder.
func restart(rw io.ReadWriter, header string) (*xml.Decoder, error) {
	d, _, err := restartFeatures(rw, header)
	return d, err
}

// restartFeatures is restart that returns the features too.
func restartFeatures(rw io.ReadWriter, header string) (*xml.Decoder, *xmpp.Element, error) {
	if _, err := io.WriteString(rw, header); err != nil {
		return nil, nil, err
	}
	d := xml.NewDecoder(rw)
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, nil, err
		}
		if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "stream" {
			break
		}
	}
	el, err := next(d)
	if err != nil {
		return nil, nil, err
	}
	if el.Local != "features" {
		return nil, nil, fmt.Errorf("expected features, got %s", el)
	}
	return d, el, nil
}

// next reads the next top-level element; a stream error becomes an error.
func next(d *xml.Decoder) (*xmpp.Element, error) {
	el, err := xmpp.NextElement(d)
	if err != nil {
		return nil, err
	}
	if el.Space == xmpp.NSStream && el.Local == "error" {
		cond := ""
		if kids := el.Elements(); len(kids) > 0 {
			cond = kids[0].Local
		}
		return nil, errors.New("stream error: " + cond)
	}
	return el, nil
}

func (c *Client) read(d *xml.Decoder) {
	for {
		el, err := next(d)
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			c.Err <- err
			close(c.In)
			return
		}
		c.In <- el
	}
}

// DialMech connects with mellium.im/xmpp as the client, over STARTTLS with
// the given SASL mechanism, and closes the stream again: a check that a
// second, independent implementation can log in.
func (s *Server) DialMech(user jid.JID, password string, mech sasl.Mechanism) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	conn, err := net.Dial("tcp", s.C2S)
	if err != nil {
		return err
	}
	defer conn.Close()
	ms, err := mxmpp.NewClientSession(ctx, user, conn,
		mxmpp.StartTLS(s.ClientTLS()),
		mxmpp.SASL("", password, mech),
		mxmpp.BindResource(),
	)
	if err != nil {
		return err
	}
	return ms.Close()
}

// SendRaw writes XML text to the server as it is.
func (c *Client) SendRaw(t testing.TB, s string) {
	t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// Expect waits for a stanza that match accepts, skipping others.
func (c *Client) Expect(t testing.TB, what string, match func(*xmpp.Element) bool) *xmpp.Element {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		select {
		case el, ok := <-c.In:
			if !ok {
				t.Fatalf("%s: stream ended while waiting for %s", c.JID, what)
			}
			if match(el) {
				return el
			}
		case <-timer.C:
			t.Fatalf("%s: timed out waiting for %s", c.JID, what)
		}
	}
}

// IQ sends an IQ of type typ with the XML text payload, to to (none when
// empty), and returns its answer, a result or an error.
func (c *Client) IQ(t testing.TB, typ, to, payload string) *xmpp.Element {
	t.Helper()
	id := "iq" + xmppID()
	attrTo := ""
	if to != "" {
		attrTo = ` to="` + to + `"`
	}
	c.SendRaw(t, `<iq type="`+typ+`" id="`+id+`"`+attrTo+`>`+payload+`</iq>`)
	return c.Expect(t, "answer to "+id, func(el *xmpp.Element) bool {
		return el.Local == "iq" && el.Get("id") == id && (el.Get("type") == "result" || el.Get("type") == "error")
	})
}

// ErrorCondition returns the stanza error condition of an error stanza,
// or "" when it carries none.
func ErrorCondition(st *xmpp.Element) xmpp.Condition {
	e := st.Child("", "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Space == xmpp.NSStanzas && c.Local != "text" {
			return xmpp.Condition(c.Local)
		}
	}
	return ""
}

// ExpectStreamError waits for the stream to end with the given condition.
func (c *Client) ExpectStreamError(t testing.TB, condition string) {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		select {
		case <-c.In:
		case err := <-c.Err:
			if err == nil || !strings.Contains(err.Error(), condition) {
				t.Fatalf("%s: stream ended with %v, want stream error %s", c.JID, err, condition)
			}
			return
		case <-timer.C:
			t.Fatalf("%s: timed out waiting for stream error %s", c.JID, condition)
		}
	}
}

// Others checks that the server still serves everyone else: two new
// accounts log in and exchange messages both ways.
func (s *Server) Others(t testing.TB) {
	t.Helper()
	n := xmppID()
	a := s.AddUser(t, "other-a"+n, "pw-a")
	b := s.AddUser(t, "other-b"+n, "pw-b")
	ca := s.Dial(t, a, "pw-a", "")
	cb := s.Dial(t, b, "pw-b", "")
	Exchange(t, ca, cb)
	Exchange(t, cb, ca)
}

// Exchange checks that a can send b a chat message that b receives, with
// a's full JID stamped as the sender.
func Exchange(t testing.TB, a, b *Client) {
	t.Helper()
	body := "hello " + xmppID()
	a.SendRaw(t, `<message type="chat" to="`+b.JID.String()+`"><body>`+body+`</body></message>`)
	el := b.Expect(t, "message "+body, func(el *xmpp.Element) bool {
		bd := el.Child("", "body")
		return el.Local == "message" && bd != nil && bd.Text() == body
	})
	if got := el.Get("from"); got != a.JID.String() {
		t.Fatalf("message from %q, want %q", got, a.JID)
	}
}

var idCounter = make(chan int, 1)

func init() { idCounter <- 0 }

func xmppID() string {
	n := <-idCounter
	idCounter <- n + 1
	return itoa(n)
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// Raw is a raw TCP connection for sending bad input before or without
// negotiating.
type Raw struct {
	net.Conn
}

// DialRaw opens a plain TCP connection to the STARTTLS port from ip.
func (s *Server) DialRaw(t testing.TB, ip string) *Raw {
	t.Helper()
	c, err := dialFrom(ip, s.C2S)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Raw{c}
}

// Header is a client stream header for the test domain.
// header is Header for the server's domain.
func (s *Server) header() string {
	return strings.Replace(Header, `to="`+Domain+`"`, `to="`+s.Server.Domain+`"`, 1)
}

const Header = `<?xml version="1.0"?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" to="` + Domain + `" version="1.0">`

// ReadUntilClosed reads everything the server sends until it closes the
// connection, and returns it.
func (r *Raw) ReadUntilClosed(t testing.TB) string {
	t.Helper()
	r.SetReadDeadline(time.Now().Add(Timeout))
	b, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server did not close the connection; got %q", b)
	}
	return string(b)
}

// StreamErrorCondition extracts the condition of the <stream:error/> in a
// server's output, or "".
func StreamErrorCondition(out string) string {
	i := strings.Index(out, "<stream:error>")
	if i < 0 {
		return ""
	}
	rest := out[i+len("<stream:error>"):]
	if !strings.HasPrefix(rest, "<") {
		return ""
	}
	end := strings.IndexAny(rest, " />")
	return rest[1:end]
}
