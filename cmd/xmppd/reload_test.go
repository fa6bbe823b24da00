package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// startWithConfig runs xmppd with the configuration file text (changed
// later by the test) and alice signed in.
func startWithConfig(t *testing.T, text string) (s *server, cfgPath string, ms *mxmpp.Session) {
	t.Helper()
	data := t.TempDir()
	cfgPath = filepath.Join(t.TempDir(), "xmppd.yaml")
	writeText(t, cfgPath, text)
	s = startServer(t, data, "-config", cfgPath)
	if code, out := xmppctl(t, "-config", cfgPath, "-data", data, "user", "add", "alice@localhost", "pw"); code != 0 {
		t.Fatalf("xmppctl user add: exit %d: %s", code, out)
	}
	ms, _, err := s.login(t, "alice@localhost", "pw")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return s, cfgPath, ms
}

// writeText writes text to path (writeFile with a string).
func writeText(t *testing.T, path, text string) { writeFile(t, path, []byte(text)) }

// reload sends SIGHUP and waits for the n-th log line saying how it went.
func (s *server) reload(t *testing.T, n int) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	await(t, "the reload's outcome in the log", func() bool {
		l := s.log.String()
		return strings.Count(l, `msg="configuration reloaded"`)+strings.Count(l, `msg="reload failed`) >= n
	})
}

// ping sends an XMPP ping on an open session and reads until its answer.
func ping(t *testing.T, ms *mxmpp.Session, id string) {
	t.Helper()
	if _, err := io.WriteString(ms.Conn(), `<iq type="get" id="`+id+`" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`); err != nil {
		t.Fatalf("the session is gone: %v", err)
	}
	ms.Conn().SetReadDeadline(time.Now().Add(testenv.Timeout))
	defer ms.Conn().SetReadDeadline(time.Time{})
	r := ms.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			t.Fatalf("no answer to ping %s: %v", id, err)
		}
		if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "iq" {
			for _, a := range st.Attr {
				if a.Name.Local == "id" && a.Value == id {
					return
				}
			}
		}
	}
}

// s2sAddr is where the process accepts other servers.
func (s *server) s2sAddr(t *testing.T) string {
	for _, m := range listening.FindAllStringSubmatch(s.log.String(), -1) {
		if m[1] == "s2s starttls" {
			return m[2]
		}
	}
	t.Fatal("no s2s listener in the log")
	return ""
}

// TestReload: after the certificate files are replaced and the file
// changed, SIGHUP makes new connections get the new certificate, debug
// lines appear, a newly denied domain is refused both ways and a changed
// listener is reported as needing a restart, while the session open
// before goes on.
func TestReload(t *testing.T) {
	s, cfgPath, ms := startWithConfig(t, "log:\n  level: info\n")
	ping(t, ms, "before")
	if strings.Contains(s.log.String(), "level=DEBUG") {
		t.Fatal("debug lines at level info")
	}

	certPEM, keyPEM, err := xmpp.SelfSignedCert(testenv.Domain)
	if err != nil {
		t.Fatal(err)
	}
	writeText(t, filepath.Join(s.data, "key.pem"), string(keyPEM))
	writeText(t, filepath.Join(s.data, "cert.pem"), string(certPEM))
	writeText(t, cfgPath, `log:
  level: debug
s2s:
  deny: [denied.test]
listen:
  s2s_direct_tls: 127.0.0.1:0
limits:
  max_roster_items: 1
`)
	s.reload(t, 1)
	log := s.log.String()
	if !strings.Contains(log, `msg="configuration reloaded"`) {
		t.Fatalf("reload failed:\n%s", log)
	}
	for _, want := range []string{"certificate", "log.level", "s2s.deny", "limits.max_roster_items"} {
		if !regexpContains(log, `changed="[^"]*\b`+want+`\b`) {
			t.Errorf("the summary does not name %s as changed", want)
		}
	}
	if !strings.Contains(log, `msg="configuration key changed; it takes effect at the next restart" key=listen.s2s_direct_tls`) {
		t.Error("the changed listener is not logged as needing a restart")
	}

	// The session made before the reload is still served.
	ping(t, ms, "after")

	// A new connection gets the new certificate.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	tc, err := tls.Dial("tcp", s.direct, &tls.Config{ServerName: testenv.Domain, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Errorf("direct TLS after the reload does not present the new certificate: %v", err)
	} else {
		tc.Close()
	}
	// login trusts what cert.pem holds now.
	if _, _, err := s.login(t, "alice@localhost", "pw"); err != nil {
		t.Errorf("STARTTLS after the reload: %v", err)
	}

	// Debug lines: a TLS handshake that fails is logged at debug.
	c, err := net.Dial("tcp", s.direct)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("not TLS\r\n\r\n"))
	c.Close()
	await(t, "a debug line", func() bool { return strings.Contains(s.log.String(), "level=DEBUG") })

	// A stanza for the denied domain bounces at once, on policy.
	io.WriteString(ms.Conn(), `<message type="chat" id="d1" to="eve@denied.test"><body>hi</body></message>`)
	if got := readUntil(t, ms.Conn(), `id="d1"`); !strings.Contains(got, "remote-server-not-found") || !strings.Contains(got, "not allowed") {
		t.Errorf("a message to the denied domain: %s", got)
	}
	// The roster limit is the new one.
	io.WriteString(ms.Conn(), `<iq type="set" id="r1"><query xmlns="jabber:iq:roster"><item jid="c1@localhost"/></query></iq>`+
		`<iq type="set" id="r2"><query xmlns="jabber:iq:roster"><item jid="c2@localhost"/></query></iq>`)
	if got := readUntil(t, ms.Conn(), "at most 1 items"); strings.Contains(got, `id="r1" type="error"`) {
		t.Errorf("the first roster item was refused: %s", got)
	}
	// A stream from the denied domain is refused.
	sc, err := net.Dial("tcp", s.s2sAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	io.WriteString(sc, `<?xml version='1.0'?><stream:stream xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams" xmlns:db="jabber:server:dialback" version="1.0" from="denied.test" to="localhost">`)
	if got := readUntil(t, sc, "</stream:stream>"); !strings.Contains(got, "policy-violation") {
		t.Errorf("a stream from the denied domain got %s", got)
	}
}

// readUntil reads from c until marker has been read, and returns what was.
func readUntil(t *testing.T, c net.Conn, marker string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testenv.Timeout))
	defer c.SetReadDeadline(time.Time{})
	var b strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(b.String(), marker) {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			t.Fatalf("reading until %s: %v; got %s", marker, err, b.String())
		}
	}
	return b.String()
}

// TestReloadInvalid: a file that does not parse, or names a certificate
// that does not load, changes nothing: the server keeps its level and
// certificate and still signs users in.
func TestReloadInvalid(t *testing.T) {
	s, cfgPath, ms := startWithConfig(t, "log:\n  level: info\n")
	writeText(t, cfgPath, "log:\n  level: debug\nlimits: [not, a, map\n")
	s.reload(t, 1)
	writeText(t, cfgPath, "log:\n  level: debug\ntls:\n  cert: /nonexistent/cert.pem\n  key: /nonexistent/key.pem\n")
	s.reload(t, 2)
	log := s.log.String()
	if n := strings.Count(log, `msg="reload failed`); n != 2 || strings.Contains(log, `msg="configuration reloaded"`) {
		t.Fatalf("want two failed reloads and none applied:\n%s", log)
	}
	if !strings.Contains(log, `msg="reload failed: certificate`) {
		t.Error("the certificate is not named as the cause")
	}
	ping(t, ms, "still")
	// A failed TLS handshake, logged at debug, before a login that the
	// log shows after it.
	c, err := net.Dial("tcp", s.direct)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("not TLS\r\n\r\n"))
	c.Close()
	if _, _, err := s.login(t, "alice@localhost", "pw"); err != nil {
		t.Fatalf("login after the failed reloads (old certificate): %v", err)
	}
	if strings.Contains(s.log.String(), "level=DEBUG") {
		t.Error("the level of the failed reload was applied")
	}
}

func regexpContains(s, expr string) bool {
	return regexp.MustCompile(expr).MatchString(s)
}

// TestSettingsMatchStart keeps settings (what a reload gives the core) the
// same as what newServer gives it at the start.
func TestSettingsMatchStart(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.S2S.Deny = []string{"a.test"}
	cfg.Limits.QueueSize = 77
	cfg.Auth.FailureWindow = time.Minute
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, registry, err := newServer(context.Background(), cfg, log, &xmpp.WebPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Store.Close()
	defer registry.Close()
	got := srv.Settings()
	defer srv.Shutdown(context.Background())
	want := settings(cfg)
	srv.Reconfigure(want)
	if !reflect.DeepEqual(got, srv.Settings()) {
		t.Fatalf("at the start:\n%+v\nafter a reload of the same file:\n%+v", got, srv.Settings())
	}
}

func TestChangedKeys(t *testing.T) {
	a := config.Default()
	b := config.Default()
	b.Listen.C2S = "0.0.0.0:5222"
	b.S2S.Deny = []string{"x.test"}
	b.Limits.QueueSize++
	b.HTTP.BOSH.MaxHold = 2
	b.Contact.Abuse = nil // empty either way: no change
	got := changedKeys(a, b)
	want := []string{"listen.c2s", "limits.queue_size", "http.bosh.max_hold", "s2s.deny"}
	if !slices.Equal(got, want) {
		t.Fatalf("changedKeys = %v, want %v", got, want)
	}
	for _, k := range got {
		if reloadable(k, false) != (k == "limits.queue_size" || k == "s2s.deny") {
			t.Errorf("reloadable(%s) = %v", k, reloadable(k, false))
		}
	}
}

// TestReloadTokenSecret: a new sign-in token secret applies at the next
// sign-in, and tokens made with the old one are refused from then on.
func TestReloadTokenSecret(t *testing.T) {
	oldSecret, newSecret := strings.Repeat("o", 32), strings.Repeat("n", 32)
	s, cfgPath, _ := startWithConfig(t, "auth:\n  tokens:\n    secret: "+oldSecret+"\n")
	mint := func(secret string) string {
		tok, err := apptoken.Mint([]byte(secret), "alice@localhost", "", time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	signIn := func(token string) error {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.Timeout)
		defer cancel()
		conn, err := net.Dial("tcp", s.c2s)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = mxmpp.NewClientSession(ctx, jid.MustParse("alice@localhost"), conn,
			mxmpp.StartTLS(s.clientTLS(t)), mxmpp.SASL("", token, sasl.Plain), mxmpp.BindResource())
		return err
	}
	if err := signIn(mint(oldSecret)); err != nil {
		t.Fatalf("token before the reload: %v", err)
	}
	writeText(t, cfgPath, "auth:\n  tokens:\n    secret: "+newSecret+"\n")
	s.reload(t, 1)
	if !strings.Contains(s.log.String(), `changed=auth.tokens.secret needs_restart=""`) {
		t.Errorf("the summary does not name the secret:\n%s", s.log)
	}
	if err := signIn(mint(newSecret)); err != nil {
		t.Errorf("token with the new secret: %v", err)
	}
	if err := signIn(mint(oldSecret)); err == nil {
		t.Error("a token with the old secret still signs in")
	}
}
