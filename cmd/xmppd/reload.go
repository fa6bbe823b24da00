package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/modules/offline"
	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/xmpp"
)

// A reloader applies the configuration file again on SIGHUP, without
// dropping a session: the certificate, the log level, the limits and
// federation lists the core reads at run time (xmpp.Settings), the roster
// and offline limits, and the sign-in token secret. Other keys need a restart; a changed one is logged
// as such. A file that does not load, or names a certificate that does
// not, changes nothing. docs/configuration.md lists what reloads.
type reloader struct {
	path string
	// override applies the command line flags, which win over the file at
	// a reload as at the start.
	override func(*config.Config)
	log      *slog.Logger
	level    *slog.LevelVar
	srv      *xmpp.Server
	certs    *xmpp.CertSource
	// tokens is nil when token sign-in was off at the start.
	tokens *tokenSwitch
	// started is the configuration the process started with, which keys
	// needing a restart are compared with; cur is the one in force.
	started, cur config.Config
	secret       []byte
}

// newReloader makes srv's certificate and token secret replaceable; call
// it before srv serves.
func newReloader(path string, override func(*config.Config), cfg config.Config, srv *xmpp.Server, log *slog.Logger, level *slog.LevelVar) (*reloader, error) {
	r := &reloader{path: path, override: override, log: log, level: level, srv: srv, started: cfg, cur: cfg}
	if len(srv.TLSConfig.Certificates) == 0 {
		return nil, fmt.Errorf("reload: the server has no certificate")
	}
	r.certs = xmpp.NewCertSource(srv.TLSConfig.Certificates[0])
	tc := srv.TLSConfig.Clone()
	// Empty, or crypto/tls would serve its first entry to clients that
	// send no server name without asking the source.
	tc.Certificates = nil
	tc.GetCertificate = r.certs.TLSConfig().GetCertificate
	srv.TLSConfig = tc
	if sig, ok := srv.Tokens.(apptoken.SignIn); ok {
		r.tokens = new(tokenSwitch)
		r.tokens.v.Store(&sig)
		srv.Tokens = r.tokens
		r.secret = sig.Verifier.Secret
	}
	return r, nil
}

// watch reloads at each SIGHUP until ctx ends; stop stops listening for
// the signal and waits for a reload in progress.
func (r *reloader) watch(ctx context.Context) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.reload()
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// reload reads the file and applies it, or nothing of it.
func (r *reloader) reload() {
	r.log.Info("reloading the configuration", "config", r.path)
	if r.path == "" {
		r.log.Warn("reload: xmppd was started without -config; the built-in defaults stay")
		return
	}
	cfg, err := config.Load(r.path)
	if err != nil {
		r.log.Error("reload failed; the configuration in force is kept", "err", err)
		return
	}
	r.override(&cfg)
	if err := cfg.Validate(); err != nil {
		r.log.Error("reload failed; the configuration in force is kept", "err", err)
		return
	}
	// Everything that can fail is read before anything is applied.
	certFile, keyFile := cfg.CertFiles()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		r.log.Error("reload failed: certificate; the configuration in force is kept", "cert", certFile, "key", keyFile, "err", err)
		return
	}
	secret, err := cfg.TokenSecret()
	if err != nil {
		r.log.Error("reload failed; the configuration in force is kept", "err", err)
		return
	}

	// Turning token sign-in on or off needs a restart: it changes how
	// PLAIN passwords are read (xmpp.Server.Tokens).
	tokens := r.tokens != nil && secret != nil
	var changed, restart []string
	for _, k := range changedKeys(r.cur, cfg) {
		if reloadable(k, tokens) {
			changed = append(changed, k)
		}
	}
	for _, k := range changedKeys(r.started, cfg) {
		if !reloadable(k, tokens) {
			restart = append(restart, k)
			r.log.Warn("configuration key changed; it takes effect at the next restart", "key", k)
		}
	}

	if old := r.certs.Certificate(); !slices.EqualFunc(old.Certificate, cert.Certificate, bytes.Equal) {
		changed = appendOnce(changed, "certificate")
	}
	r.certs.Set(cert)
	r.level.Set(cfg.Level())
	r.srv.Reconfigure(settings(cfg))
	for _, m := range r.srv.Modules {
		switch m := m.(type) {
		case *roster.Module:
			m.SetMaxItems(cfg.Limits.MaxRosterItems)
		case *offline.Module:
			m.SetLimits(cfg.Limits.MaxOfflineMessages, cfg.Limits.MaxOfflineBytes)
		}
	}
	if tokens {
		if !bytes.Equal(secret, r.secret) {
			// The file's content may have changed, not its name.
			key := "auth.tokens.secret"
			if cfg.Auth.Tokens.SecretFile != "" {
				key = "auth.tokens.secret_file"
			}
			changed = appendOnce(changed, key)
		}
		sig := *r.tokens.v.Load()
		sig.Verifier.Secret = secret
		sig.Verifier.Audience = cmp.Or(cfg.Auth.Tokens.Audience, cfg.Domain)
		r.tokens.v.Store(&sig)
		r.secret = secret
	}
	r.cur = cfg
	r.log.Info("configuration reloaded", "changed", strings.Join(changed, " "), "needs_restart", strings.Join(restart, " "))
}

func appendOnce(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// settings are the core's run-time settings from the configuration, as
// newServer gives them to the server at the start.
func settings(cfg config.Config) xmpp.Settings {
	l, a, s := cfg.Limits, cfg.Auth, cfg.S2S
	return xmpp.Settings{
		MaxStanzaSize:          l.MaxStanzaSize,
		ReadRate:               l.ReadRate,
		ReadBurst:              l.ReadBurst,
		MaxUnauthPerIP:         l.MaxUnauthPerIP,
		ConnRatePerIP:          l.ConnRatePerIP,
		ConnBurstPerIP:         l.ConnBurstPerIP,
		TLSHandshakeTimeout:    l.TLSHandshakeTimeout,
		NegotiationTimeout:     l.NegotiationTimeout,
		MaxSessionsPerAccount:  l.MaxSessionsPerAccount,
		SMResumeTimeout:        l.SMResumeTimeout,
		SMMaxUnacked:           l.SMMaxUnacked,
		QueueSize:              l.QueueSize,
		QueueBytes:             l.QueueBytes,
		AuthFailureDelay:       a.FailureDelay,
		MaxAuthFailures:        a.MaxFailures,
		MaxAccountAuthFailures: a.MaxAccountFailures,
		AuthFailureWindow:      a.FailureWindow,
		S2SRoutes:              s.Routes,
		S2SAllow:               s.Allow,
		S2SDeny:                s.Deny,
		S2SIdleTimeout:         s.IdleTimeout,
		S2SConnectTimeout:      s.ConnectTimeout,
		S2SQueueSize:           s.QueueSize,
	}
}

// reloadable reports whether a reload applies the configuration key; the
// token keys only while token sign-in stays on.
func reloadable(key string, tokens bool) bool {
	switch key {
	case "tls.cert", "tls.key", "log.level",
		"limits.max_stanza_size", "limits.read_rate", "limits.read_burst",
		"limits.max_unauthenticated_per_ip", "limits.max_connections_per_ip",
		"limits.connection_rate_per_ip", "limits.connection_burst_per_ip",
		"limits.tls_handshake_timeout", "limits.negotiation_timeout",
		"limits.max_sessions_per_account", "limits.sm_resume_timeout", "limits.sm_max_unacked",
		"limits.queue_size", "limits.queue_bytes",
		"limits.max_roster_items", "limits.max_offline_messages", "limits.max_offline_bytes",
		"auth.failure_delay", "auth.max_failures", "auth.max_account_failures", "auth.failure_window",
		"s2s.routes", "s2s.allow", "s2s.deny",
		"s2s.idle_timeout", "s2s.connect_timeout", "s2s.queue_size":
		return true
	case "auth.tokens.secret", "auth.tokens.secret_file", "auth.tokens.audience":
		return tokens
	}
	return false
}

// changedKeys lists the configuration keys (YAML paths, as in
// docs/configuration.md) whose values differ between a and b. Every key is
// compared, so that one added later is reported as needing a restart until
// reload learns to apply it.
func changedKeys(a, b config.Config) []string {
	var keys []string
	var walk func(prefix string, x, y reflect.Value)
	walk = func(prefix string, x, y reflect.Value) {
		for i := 0; i < x.NumField(); i++ {
			f := x.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fx, fy := x.Field(i), y.Field(i)
			if f.Type.Kind() == reflect.Struct {
				walk(prefix+name+".", fx, fy)
				continue
			}
			if !equalValue(fx, fy) {
				keys = append(keys, prefix+name)
			}
		}
	}
	walk("", reflect.ValueOf(a), reflect.ValueOf(b))
	return keys
}

// equalValue compares two values of a key, an empty list or map equal to
// none.
func equalValue(x, y reflect.Value) bool {
	switch x.Kind() {
	case reflect.Slice, reflect.Map:
		if x.Len() == 0 && y.Len() == 0 {
			return true
		}
	}
	return reflect.DeepEqual(x.Interface(), y.Interface())
}

// A tokenSwitch is the server's token verifier, whose secret and audience a
// reload replaces.
type tokenSwitch struct {
	v atomic.Pointer[apptoken.SignIn]
}

func (t *tokenSwitch) VerifyToken(ctx context.Context, bare, token string) error {
	return t.v.Load().VerifyToken(ctx, bare, token)
}
