// Command xmppd is the XMPP server. With no configuration it serves
// "localhost" from ./data on embedded storage; see docs/configuration.md.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xmppd/xmppd/bosh"
	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/internal/web"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/register"
	"github.com/xmppd/xmppd/modules/upload"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/redis"
	"github.com/xmppd/xmppd/xmpp"
)

func main() {
	os.Exit(exitStatus(os.Stderr, run(os.Args[1:])))
}

func run(args []string) error {
	// Many long-lived idle connections: keep the heap within 1.5x of what is
	// live rather than Go's 2x (docs/configuration.md). GOGC still rules.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	fs := flag.NewFlagSet("xmppd", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML configuration file (default: none, built-in defaults)")
	domain := fs.String("domain", "", "XMPP domain to serve (overrides the file)")
	dataDir := fs.String("data", "", "data directory (overrides the file)")
	c2s := fs.String("c2s", "", "STARTTLS client listener address, e.g. 127.0.0.1:5222 (overrides the file)")
	direct := fs.String("c2s-tls", "", "direct TLS client listener address (overrides the file)")
	s2sAddr := fs.String("s2s", "", "server-to-server listener address, e.g. 0.0.0.0:5269 (overrides the file)")
	adminAddr := fs.String("admin", "", "admin listener address for the admin API, /metrics, /healthz and /readyz, e.g. 127.0.0.1:5281 (overrides the file)")
	httpAddr := fs.String("http", "", "HTTP listener address for WebSocket, BOSH and the web client, e.g. 127.0.0.1:5280 (overrides the file)")
	level := fs.String("log-level", "", "debug, info, warn or error (overrides the file)")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler at this address, e.g. 127.0.0.1:6060 (off by default)")
	showVersion := fs.Bool("version", false, "print the version and build, and exit")
	check := fs.Bool("check", false, "check the configuration, certificate, storage and Redis, print a verdict, and exit (0: OK, 1: FAILED)")
	if err := parseArgs(fs, args, os.Stdout); err != nil {
		return err
	}
	if *showVersion {
		writeVersion(os.Stdout, buildInfo())
		return nil
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil && !*check {
		return err
	}
	// The flags win over the file, at the start and at each reload.
	override := func(cfg *config.Config) {
		setIf(&cfg.Domain, *domain)
		setIf(&cfg.DataDir, *dataDir)
		setIf(&cfg.Listen.C2S, *c2s)
		setIf(&cfg.Listen.C2SDirect, *direct)
		setIf(&cfg.Listen.HTTP, *httpAddr)
		setIf(&cfg.Listen.Admin, *adminAddr)
		setIf(&cfg.Listen.S2S, *s2sAddr)
		setIf(&cfg.Log.Level, *level)
	}
	override(&cfg)
	if err == nil {
		// Again, for the values of the flags (-log-level).
		err = cfg.Validate()
	}
	if err != nil && !*check {
		return err
	}
	if *check {
		return runCheck(os.Stdout, *cfgPath, cfg, err)
	}
	logLevel := new(slog.LevelVar) // a reload changes it
	logLevel.Set(cfg.Level())
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	log.Info("starting", "version", buildInfo().Version, "domain", cfg.Domain, "config", cmp.Or(*cfgPath, "(none: built-in defaults)"), "log_level", logLevel.Level().String())
	if cfg.Limits.MaxConnsPerIP != 0 {
		log.Warn("limits.max_connections_per_ip is deprecated: it now sets limits.max_unauthenticated_per_ip (signed-in sessions are limited per account by limits.max_sessions_per_account)")
	}
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			return fmt.Errorf("-pprof: %w", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	policy, err := cfg.HTTP.Policy()
	if err != nil {
		return err
	}
	srv, registry, err := newServer(ctx, cfg, log, policy)
	if err != nil {
		return err
	}
	defer closeWithin(log, "storage", srv.Store.Close)
	// Closed after the server has stopped, so that the sessions' entries
	// are gone from a shared registry at once rather than after its TTL.
	defer closeWithin(log, "presence registry", registry.Close)
	leave, err := startBus(ctx, cfg, srv, registry, log)
	if err != nil {
		return fmt.Errorf("cluster bus: %w", err)
	}
	if leave != nil {
		defer leave()
	}
	rl, err := newReloader(*cfgPath, override, cfg, srv, log, logLevel)
	if err != nil {
		return err
	}
	defer rl.watch(ctx)() // SIGHUP

	errc := make(chan error, 2)
	listen := func(addr, kind string, serve func(net.Listener) error) error {
		if addr == "" {
			log.Info("not listening", "kind", kind)
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		log.Info("listening", "kind", kind, "addr", l.Addr().String(), "domain", cfg.Domain)
		go func() { errc <- serve(l) }()
		return nil
	}
	if err := listen(cfg.Listen.C2S, "c2s starttls", srv.ServeC2S); err != nil {
		return err
	}
	if err := listen(cfg.Listen.C2SDirect, "c2s direct tls", srv.ServeDirectTLS); err != nil {
		return err
	}
	if cfg.S2S.Enabled {
		if err := listen(cfg.Listen.S2S, "s2s starttls", srv.ServeS2S); err != nil {
			return err
		}
		if err := listen(cfg.Listen.S2SDirect, "s2s direct tls", srv.ServeS2SDirectTLS); err != nil {
			return err
		}
	} else {
		log.Info("not listening", "kind", "s2s", "why", "s2s.enabled is false")
	}
	as, amux := newAdmin(cfg, srv, log, policy)
	hs := newHTTP(cfg, srv, log, policy)
	// The per-address connection rate applies at accept, before TLS.
	if err := listen(cfg.Listen.HTTP, "http (websocket, bosh, web client)", func(l net.Listener) error {
		return hs.Serve(srv.LimitListener(l))
	}); err != nil {
		return err
	}
	if err := listen(cfg.Listen.HTTPS, "https (websocket, bosh, web client)", func(l net.Listener) error {
		tc := srv.TLSConfig.Clone()
		// HTTP/1.1 only: a WebSocket upgrade takes over the connection,
		// which HTTP/2 does not allow.
		tc.NextProtos = []string{"http/1.1"}
		return hs.Serve(tls.NewListener(srv.LimitListener(l), tc))
	}); err != nil {
		return err
	}
	addOperations(cfg, srv, registry, log, amux)
	if err := listen(cfg.Listen.Admin, "admin (api, metrics, health)", as.Serve); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, xmpp.ErrServerClosed) {
			log.Error("listener failed", "err", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	// After the streams: BOSH clients still get their system-shutdown.
	hs.Shutdown(sctx)
	as.Shutdown(sctx)
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// shutdownTimeout bounds closing the streams at SIGTERM, and closeTimeout
// each store after that (docs/configuration.md: a stopped server is gone
// within 20 s).
const (
	shutdownTimeout = 10 * time.Second
	closeTimeout    = 5 * time.Second
)

// closeWithin closes a store and waits for it at most closeTimeout: a pool
// that waits for a connection something stuck still holds must not keep
// the process alive.
func closeWithin(log *slog.Logger, what string, close func() error) {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("closing "+what, "err", err)
		}
	case <-time.After(closeTimeout):
		log.Warn("closing "+what+" takes too long; exiting anyway", "after", closeTimeout)
	}
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// newHTTP builds the web listener's server (WebSocket, BOSH, discovery and
// the web client).
func newHTTP(cfg config.Config, srv *xmpp.Server, log *slog.Logger, policy *xmpp.WebPolicy) *http.Server {
	clientDir := ""
	if cfg.HTTP.WebClient {
		clientDir = cfg.HTTP.WebClientDir
		if _, err := os.Stat(filepath.Join(clientDir, "node_modules", "converse.js", "dist")); err != nil {
			log.Warn("the web client is not installed: /chat/ says so until `make web` is run", "web_client_dir", clientDir)
		}
	}
	b := cfg.HTTP.BOSH
	bh := &bosh.Handler{
		MaxWait:    b.MaxWait,
		MaxHold:    b.MaxHold,
		Inactivity: b.Inactivity,
		MaxPause:   b.MaxPause,
	}
	if m := metricsOf(srv); m != nil {
		m.WatchBOSH(bh)
	}
	h := web.Handler(web.Options{
		Server:    srv,
		Policy:    policy,
		ClientDir: clientDir,
		BOSH:      bh,
	})
	idle := cfg.HTTP.IdleTimeout
	if idle == 0 {
		idle = config.Default().HTTP.IdleTimeout
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       xmpp.HTTPConnContext, // for AdmitWebStream
		IdleTimeout:       idle,                 // negative: never (net/http)
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// newUpload is the upload service the configuration asks for, or nil.
func newUpload(cfg config.Config, policy *xmpp.WebPolicy) *upload.Service {
	u := cfg.Upload
	if !u.Enabled || (cfg.Listen.HTTP == "" && cfg.Listen.HTTPS == "" && u.PublicURL == "") {
		return nil
	}
	return &upload.Service{
		Domain:       u.Domain,
		Dir:          cfg.UploadDir(),
		PublicURL:    cfg.UploadURL(),
		MaxFileSize:  u.MaxFileSize,
		Quota:        u.QuotaPerAccount,
		FileLifetime: u.FileLifetime,
		MinPutRate:   u.MinPutRate,
		PutGrace:     u.PutGrace,
		Policy:       policy,
	}
}

// newServer builds the server the configuration describes.
func newServer(ctx context.Context, cfg config.Config, log *slog.Logger, policy *xmpp.WebPolicy) (*xmpp.Server, storage.Registry, error) {
	secret, err := cfg.TokenSecret()
	if err != nil {
		return nil, nil, err
	}
	dialback, err := cfg.DialbackSecret()
	if err != nil {
		return nil, nil, err
	}
	// Storage first: a database that is unreachable or lacks its schema
	// stops the start before anything is written, a certificate included.
	store, err := cfg.OpenStore(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("storage: %w", err)
	}
	log.Info("storage", storageAttrs(cfg)...)
	registry, err := cfg.OpenRegistry(ctx)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("presence registry: %w", err)
	}
	if cfg.Presence.Backend == "redis" {
		log.Info("presence", "backend", "redis", "redis", cfg.Presence.Redis, "prefix", cfg.Presence.Prefix, "node", cfg.Presence.Node)
	} else {
		log.Info("presence", "backend", "memory", "node", cfg.Presence.Node)
	}
	certFile, keyFile := cfg.CertFiles()
	cert, created, err := xmpp.LoadOrCreateCert(certFile, keyFile, cfg.Domain)
	if err != nil {
		registry.Close()
		store.Close()
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	if created {
		log.Info("generated a self-signed certificate", "cert", certFile, "domain", cfg.Domain)
	}
	mx := newMetrics(cfg)
	if mx != nil {
		store = mx.WrapStore(store) // timed per operation (internal/metrics)
	}
	l := cfg.Limits
	srv := &xmpp.Server{
		Domain:                 cfg.Domain,
		TLSConfig:              xmpp.TLSConfig(cert),
		Store:                  store,
		Logger:                 log,
		Version:                buildInfo().Version,
		AllowPlaintextAuth:     cfg.Auth.AllowPlaintext,
		SCRAMIterations:        cfg.Auth.Iterations,
		MaxStanzaSize:          l.MaxStanzaSize,
		ReadRate:               l.ReadRate,
		ReadBurst:              l.ReadBurst,
		MaxUnauthPerIP:         l.MaxUnauthPerIP,
		ConnRatePerIP:          l.ConnRatePerIP,
		ConnBurstPerIP:         l.ConnBurstPerIP,
		TLSHandshakeTimeout:    l.TLSHandshakeTimeout,
		MaxSessionsPerAccount:  l.MaxSessionsPerAccount,
		SMResumeTimeout:        l.SMResumeTimeout,
		SMMaxUnacked:           l.SMMaxUnacked,
		NegotiationTimeout:     l.NegotiationTimeout,
		PingInterval:           l.PingInterval,
		PingTimeout:            l.PingTimeout,
		QueueSize:              l.QueueSize,
		QueueBytes:             l.QueueBytes,
		AuthFailureDelay:       cfg.Auth.FailureDelay,
		MaxAuthFailures:        cfg.Auth.MaxFailures,
		MaxAccountAuthFailures: cfg.Auth.MaxAccountFailures,
		AuthFailureWindow:      cfg.Auth.FailureWindow,
		S2SDisabled:            !cfg.S2S.Enabled,
		S2SRoutes:              cfg.S2S.Routes,
		S2SAllow:               cfg.S2S.Allow,
		S2SDeny:                cfg.S2S.Deny,
		DialbackSecret:         dialback,
		S2SIdleTimeout:         cfg.S2S.IdleTimeout,
		S2SConnectTimeout:      cfg.S2S.ConnectTimeout,

		S2SMaxConnecting:          cfg.S2S.MaxConnecting,
		S2SMaxConnectingPerSender: cfg.S2S.MaxConnectingPerSender,
		S2SMaxWaiting:             cfg.S2S.MaxWaiting,
		S2SMaxWaitingPerSender:    cfg.S2S.MaxWaitingPerSender,
		S2SQueueSize:              cfg.S2S.QueueSize,
		SessionRegistry:           registry,
		NodeName:                  cfg.Presence.Node,
		Modules: modules.Default(modules.Options{
			Store:                store,
			MaxRosterItems:       l.MaxRosterItems,
			MaxOfflineMessages:   l.MaxOfflineMessages,
			MUC:                  cfg.MUC.Enabled,
			MUCDomain:            cfg.MUC.Domain,
			MUCMaxRoomsPerOwner:  cfg.MUC.MaxRoomsPerOwner,
			MUCHosting:           mucHosting(registry),
			MaxOfflineBytes:      l.MaxOfflineBytes,
			MaxDirectedPresences: l.MaxDirectedPresences,
			MaxVCardBytes:        l.MaxVCardBytes,
			MaxPrivateBytes:      l.MaxPrivateBytes,
			MaxPrivateElements:   l.MaxPrivateElements,
			MaxPEPNodes:          l.MaxPEPNodes,
			MaxPEPItems:          l.MaxPEPItems,
			MaxPEPItemBytes:      l.MaxPEPItemBytes,
			Archive: modules.Archive{
				Disabled:    !cfg.Archive.Enabled,
				Default:     cfg.Archive.Default,
				MaxAge:      cfg.Archive.MaxAge,
				MaxMessages: cfg.Archive.MaxMessages,
			},
			Registration: register.Creation{
				Enabled:       cfg.Registration.Enabled,
				PerAddress:    cfg.Registration.PerAddress,
				Window:        cfg.Registration.Window,
				RequireInvite: cfg.Registration.RequireInvite,
			},
			Contacts: cfg.Contact.Addresses(),
			Upload:   newUpload(cfg, policy),
		}),
	}
	if mx != nil {
		srv.Metrics = mx
	}
	// Every node answers the other nodes' admin API about its sessions,
	// whether it serves the API itself or not.
	srv.Modules = append(srv.Modules, &admin.Cluster{})
	if rr, ok := registry.(*redis.Registry); ok {
		// Nodes sharing the registry share locks on accounts too.
		srv.Locker = rr.Locker()
	}
	if secret != nil {
		aud := cmp.Or(cfg.Auth.Tokens.Audience, cfg.Domain)
		srv.Tokens = apptoken.SignIn{
			// The leeway allows for the clocks of the app and xmppd to differ.
			Verifier: apptoken.Verifier{Secret: secret, Audience: aud, Leeway: 30 * time.Second},
			Store:    store,
		}
		log.Info("token sign-in enabled", "audience", aud)
	}
	return srv, registry, nil
}

// storageAttrs names the storage for the start-up log: the SQLite file,
// or the Postgres server, database, user and schema (never the password).
func storageAttrs(cfg config.Config) []any {
	if cfg.Storage.Backend != "postgres" {
		path := cfg.SQLitePath()
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return []any{"backend", "sqlite", "file", path}
	}
	pc, err := pgconn.ParseConfig(cfg.Storage.Postgres)
	if err != nil {
		return []any{"backend", "postgres"}
	}
	return []any{"backend", "postgres", "host", net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port))),
		"database", pc.Database, "user", pc.User, "search_path", cmp.Or(pc.RuntimeParams["search_path"], "(server default)")}
}
