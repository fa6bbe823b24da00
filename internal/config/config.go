// Package config reads xmppd's YAML configuration file (documented in
// docs/configuration.md), fills in the defaults, and opens what it names.
// xmppd and xmppctl share it so that both find the same data.
package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/modules/disco"
	"github.com/xmppd/xmppd/modules/upload"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/memory"
	"github.com/xmppd/xmppd/storage/postgres"
	"github.com/xmppd/xmppd/storage/redis"
	"github.com/xmppd/xmppd/storage/sqlite"
	"github.com/xmppd/xmppd/xmpp"
)

// Config is the whole configuration. Field comments are the documentation
// summary; docs/configuration.md has the long form.
type Config struct {
	// Domain is the XMPP domain served.
	Domain string `yaml:"domain"`
	// DataDir holds the embedded database and the generated certificate.
	DataDir      string       `yaml:"data_dir"`
	Listen       Listen       `yaml:"listen"`
	TLS          TLS          `yaml:"tls"`
	Storage      Store        `yaml:"storage"`
	Presence     Presence     `yaml:"presence"`
	Auth         Auth         `yaml:"auth"`
	Limits       Limits       `yaml:"limits"`
	MUC          MUC          `yaml:"muc"`
	Archive      Archive      `yaml:"archive"`
	Upload       Upload       `yaml:"upload"`
	Registration Registration `yaml:"registration"`
	Contact      Contact      `yaml:"contact"`
	HTTP         HTTP         `yaml:"http"`
	API          API          `yaml:"api"`
	S2S          S2S          `yaml:"s2s"`
	Log          Log          `yaml:"log"`
	Metrics      Metrics      `yaml:"metrics"`
}

// HTTP configures the web listener: WebSocket (/ws), BOSH (/http-bind),
// XEP-0156 discovery and the web client (/chat/).
type HTTP struct {
	// AllowedOrigins are the origins whose pages may connect; with none,
	// pages from loopback addresses (and the server's own) may.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// SecureNetworks are where plain-HTTP requests count as secure for
	// authentication (a TLS-terminating proxy on the same host).
	SecureNetworks []string `yaml:"secure_networks"`
	// TrustedProxies may set X-Forwarded-For, -Proto and -Host.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// WebClient serves Converse.js at /chat/ from WebClientDir.
	WebClient    bool   `yaml:"web_client"`
	WebClientDir string `yaml:"web_client_dir"`
	// IdleTimeout closes a keep-alive connection that has no request for
	// this long (negative: never), so that connections that made one
	// request and then idle do not pile up: the connection rate bounds
	// how fast they come, this how long each stays.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	BOSH        BOSH          `yaml:"bosh"`
}

// BOSH bounds BOSH sessions (XEP-0124).
type BOSH struct {
	MaxWait    time.Duration `yaml:"max_wait"`
	MaxHold    int           `yaml:"max_hold"`
	Inactivity time.Duration `yaml:"inactivity"`
	MaxPause   time.Duration `yaml:"max_pause"`
}

// Policy is the web transports' origin and security policy.
func (h HTTP) Policy() (*xmpp.WebPolicy, error) {
	p := &xmpp.WebPolicy{Origins: h.AllowedOrigins}
	var err error
	if p.SecureNetworks, err = prefixes("http.secure_networks", h.SecureNetworks); err != nil {
		return nil, err
	}
	if p.TrustedProxies, err = prefixes("http.trusted_proxies", h.TrustedProxies); err != nil {
		return nil, err
	}
	return p, nil
}

// prefixes parses addresses and CIDR prefixes.
func prefixes(key string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %q is neither an address nor a CIDR prefix", key, v)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Archive configures the message archive of accounts (XEP-0313).
type Archive struct {
	// Enabled archives messages; on by default.
	Enabled bool `yaml:"enabled"`
	// Default is what is archived for an account that set no
	// preferences: always, never or roster.
	Default string `yaml:"default"`
	// MaxAge removes messages older than it; zero keeps them.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxMessages bounds each account's archive, removing the oldest;
	// zero or negative: no limit.
	MaxMessages int `yaml:"max_messages"`
}

// MUC configures the multi-user chat service (XEP-0045).
type MUC struct {
	// Enabled runs the service; on by default.
	Enabled bool `yaml:"enabled"`
	// Domain is the service's domain; default "conference." + Domain.
	Domain string `yaml:"domain"`
	// MaxRoomsPerOwner bounds the rooms one account owns: creating
	// another by joining is refused (muc.Service.MaxRoomsPerOwner).
	// Negative: no limit.
	MaxRoomsPerOwner int `yaml:"max_rooms_per_owner"`
}

// Registration configures account creation by in-band registration
// (XEP-0077); password changes and account removal by the account's owner
// are always on.
type Registration struct {
	// Enabled lets clients create accounts; off by default.
	Enabled bool `yaml:"enabled"`
	// PerAddress accounts may be created from one IP address per Window
	// (negative: no limit).
	PerAddress int           `yaml:"per_address"`
	Window     time.Duration `yaml:"window"`
	// RequireInvite asks for an invitation made by xmppctl invite create.
	RequireInvite bool `yaml:"require_invite"`
}

// Upload configures the HTTP file upload service (XEP-0363).
type Upload struct {
	// Enabled runs the service; on by default.
	Enabled bool `yaml:"enabled"`
	// Domain is the service's domain; default "upload." + Domain.
	Domain string `yaml:"domain"`
	// PublicURL is where clients reach the web listener (the proxy's
	// address behind one); default from listen.https, else listen.http.
	PublicURL string `yaml:"public_url"`
	// Dir keeps the files; default DataDir/upload.
	Dir string `yaml:"dir"`
	// MaxFileSize bounds one file (bytes); QuotaPerAccount what one
	// account stores (negative: no limit); FileLifetime how long a file
	// is kept (negative: for ever).
	MaxFileSize     int64         `yaml:"max_file_size"`
	QuotaPerAccount int64         `yaml:"quota_per_account"`
	FileLifetime    time.Duration `yaml:"file_lifetime"`
	// MinPutRate (bytes per second, negative: no bound) and PutGrace:
	// a PUT's first n bytes must arrive within PutGrace + n/MinPutRate,
	// else it fails and what came is deleted.
	MinPutRate int64         `yaml:"min_put_rate"`
	PutGrace   time.Duration `yaml:"put_grace"`
}

// Contact lists the server's contact addresses (XEP-0157), which clients
// find in the server's service discovery information: for each role, URIs
// such as mailto:abuse@example.com, xmpp:admin@example.com or
// https://example.com/support. None are published by default.
type Contact struct {
	Abuse    []string `yaml:"abuse"`
	Admin    []string `yaml:"admin"`
	Feedback []string `yaml:"feedback"`
	Sales    []string `yaml:"sales"`
	Security []string `yaml:"security"`
	Support  []string `yaml:"support"`
}

// Addresses are the contact addresses as the disco module takes them.
func (c Contact) Addresses() disco.Addresses {
	return disco.Addresses(c)
}

func (c Contact) check() error {
	for _, k := range []struct {
		key  string
		list []string
	}{{"abuse", c.Abuse}, {"admin", c.Admin}, {"feedback", c.Feedback},
		{"sales", c.Sales}, {"security", c.Security}, {"support", c.Support}} {
		for _, v := range k.list {
			if err := disco.CheckAddress(v); err != nil {
				return fmt.Errorf("config: contact.%s: %q: %w", k.key, v, err)
			}
		}
	}
	return nil
}

// UploadDir is where uploaded files are kept.
func (c Config) UploadDir() string {
	if c.Upload.Dir != "" {
		return c.Upload.Dir
	}
	return filepath.Join(c.DataDir, "upload")
}

// UploadURL is the public URL of the web listener for upload slots:
// upload.public_url, else https://DOMAIN:PORT of listen.https, else
// http://DOMAIN:PORT of listen.http (a default port left out).
func (c Config) UploadURL() string {
	if c.Upload.PublicURL != "" {
		return strings.TrimSuffix(c.Upload.PublicURL, "/")
	}
	scheme, addr, def := "https", c.Listen.HTTPS, "443"
	if addr == "" {
		scheme, addr, def = "http", c.Listen.HTTP, "80"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == def {
		return scheme + "://" + c.Domain
	}
	return scheme + "://" + net.JoinHostPort(c.Domain, port)
}

// Presence selects where the presence and session registry lives.
type Presence struct {
	Backend string `yaml:"backend"` // "memory" (default) or "redis"
	// Redis is the server's address (host:port) or a redis:// URL.
	Redis string `yaml:"redis"`
	// Prefix starts every Redis key xmppd uses.
	Prefix string `yaml:"redis_prefix"`
	// Node names this process in the registry; default: host name and PID.
	Node string `yaml:"node"`
	// TTL is how long the entries of a node that died stay visible.
	TTL time.Duration `yaml:"ttl"`
}

// Listen holds the listening addresses; an empty one is not opened.
type Listen struct {
	C2S       string `yaml:"c2s"`
	C2SDirect string `yaml:"c2s_direct_tls"`
	// HTTP and HTTPS serve the web listener (WebSocket, BOSH, web client),
	// HTTPS with the server's certificate.
	HTTP  string `yaml:"http"`
	HTTPS string `yaml:"https"`
	// S2S and S2SDirect accept other servers (federation).
	S2S       string `yaml:"s2s"`
	S2SDirect string `yaml:"s2s_direct_tls"`
	// Admin serves the admin API and operators' endpoints (/metrics,
	// /healthz, /readyz) apart from the web listener. Loopback by default:
	// it must not be open to the internet.
	Admin string `yaml:"admin"`
}

// API configures the admin HTTP API (/api/v1, docs/api.md).
type API struct {
	// Enabled serves the API on listen.admin.
	Enabled bool `yaml:"enabled"`
	// WebListener serves it on listen.http and listen.https too.
	WebListener bool `yaml:"web_listener"`
	// TokenFile holds the API token xmppctl's live commands use.
	TokenFile string `yaml:"token_file"`
}

// Metrics configures Prometheus metrics on the admin listener.
type Metrics struct {
	Enabled bool `yaml:"enabled"`
}

// S2S configures federation with other servers.
type S2S struct {
	// Enabled lets users reach other domains (and listen.s2s accept them).
	Enabled bool `yaml:"enabled"`
	// Routes map domains to host:port, used before DNS.
	Routes map[string]string `yaml:"routes"`
	// Allow, when not empty, lists the only domains federated with; Deny
	// lists domains never federated with.
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
	// DialbackSecret keys dialback; empty: random at each start. Nodes of
	// one cluster must share it. DialbackSecretFile holds it instead, so
	// that it stays out of the file (docs/cluster.md).
	DialbackSecret     string        `yaml:"dialback_secret"`
	DialbackSecretFile string        `yaml:"dialback_secret_file"`
	IdleTimeout        time.Duration `yaml:"idle_timeout"`
	ConnectTimeout     time.Duration `yaml:"connect_timeout"`
	// MaxConnecting bounds the outgoing streams being set up at once, and
	// MaxConnectingPerSender those of one sender; MaxWaiting and
	// MaxWaitingPerSender bound the attempts waiting for their turn.
	// QueueSize bounds the stanzas queued for one outgoing stream.
	MaxConnecting          int `yaml:"max_connecting"`
	MaxConnectingPerSender int `yaml:"max_connecting_per_sender"`
	MaxWaiting             int `yaml:"max_waiting"`
	MaxWaitingPerSender    int `yaml:"max_waiting_per_sender"`
	QueueSize              int `yaml:"queue_size"`
}

// TLS names the certificate and key (PEM files).
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Store selects the storage backend.
type Store struct {
	Backend  string `yaml:"backend"` // "sqlite" (default) or "postgres"
	SQLite   string `yaml:"sqlite_path"`
	Postgres string `yaml:"postgres_dsn"`
}

// Auth configures authentication.
type Auth struct {
	AllowPlaintext bool          `yaml:"allow_plaintext"`
	Iterations     int           `yaml:"scram_iterations"`
	FailureDelay   time.Duration `yaml:"failure_delay"`
	MaxFailures    int           `yaml:"max_failures"`
	// MaxAccountFailures on one account, from any addresses, lock it for
	// addresses its owner has not signed in from.
	MaxAccountFailures int           `yaml:"max_account_failures"`
	FailureWindow      time.Duration `yaml:"failure_window"`
	Tokens             Tokens        `yaml:"tokens"`
}

// Tokens configures sign-in with tokens the app issues (JWT, HS256).
type Tokens struct {
	// Secret is the shared HMAC key; empty (with SecretFile empty) turns
	// tokens off.
	Secret string `yaml:"secret"`
	// SecretFile holds the key instead, so that it stays out of the file.
	SecretFile string `yaml:"secret_file"`
	// Audience a token must name; default: the domain.
	Audience string `yaml:"audience"`
}

// Limits protect the server from clients.
type Limits struct {
	MaxStanzaSize         int           `yaml:"max_stanza_size"`
	MaxUnauthPerIP        int           `yaml:"max_unauthenticated_per_ip"`
	ConnRatePerIP         float64       `yaml:"connection_rate_per_ip"`
	ConnBurstPerIP        int           `yaml:"connection_burst_per_ip"`
	TLSHandshakeTimeout   time.Duration `yaml:"tls_handshake_timeout"`
	MaxSessionsPerAccount int           `yaml:"max_sessions_per_account"`
	// SMResumeTimeout is how long a session whose connection broke waits to
	// be resumed (XEP-0198); SMMaxUnacked bounds what it keeps for that.
	SMResumeTimeout time.Duration `yaml:"sm_resume_timeout"`
	SMMaxUnacked    int           `yaml:"sm_max_unacked"`
	// MaxConnsPerIP is the old name of MaxUnauthPerIP, which it sets when
	// that is not set; it once counted signed-in sessions too.
	MaxConnsPerIP      int           `yaml:"max_connections_per_ip"`
	ReadRate           int           `yaml:"read_rate"`
	ReadBurst          int           `yaml:"read_burst"`
	NegotiationTimeout time.Duration `yaml:"negotiation_timeout"`
	PingInterval       time.Duration `yaml:"ping_interval"`
	PingTimeout        time.Duration `yaml:"ping_timeout"`
	QueueSize          int           `yaml:"queue_size"`
	QueueBytes         int           `yaml:"queue_bytes"`
	MaxRosterItems     int           `yaml:"max_roster_items"`
	MaxOfflineMessages int           `yaml:"max_offline_messages"`
	// MaxOfflineBytes bounds all offline queues together, across every
	// node sharing the storage.
	MaxOfflineBytes int64 `yaml:"max_offline_bytes"`
	// MaxDirectedPresences bounds the entities one session may send
	// directed presence to (RFC 6121 §4.6).
	MaxDirectedPresences int `yaml:"max_directed_presences"`
	// MaxVCardBytes bounds one account's serialised vCard (XEP-0054),
	// MaxPrivateBytes one element of its private storage (XEP-0049) and
	// MaxPrivateElements how many elements it stores.
	MaxVCardBytes      int `yaml:"max_vcard_bytes"`
	MaxPrivateBytes    int `yaml:"max_private_bytes"`
	MaxPrivateElements int `yaml:"max_private_elements"`
	// MaxPEPNodes bounds one account's personal eventing nodes
	// (XEP-0163), MaxPEPItems the items a node keeps at most ("max"),
	// MaxPEPItemBytes one item's payload.
	MaxPEPNodes     int `yaml:"max_pep_nodes"`
	MaxPEPItems     int `yaml:"max_pep_items"`
	MaxPEPItemBytes int `yaml:"max_pep_item_bytes"`
}

// Log configures logging.
type Log struct {
	Level string `yaml:"level"` // debug, info, warn, error
}

// Default is the configuration with no file: a complete single-node server
// for localhost on embedded storage in ./data.
func Default() Config {
	return Config{
		Domain:  "localhost",
		DataDir: "./data",
		Listen:  Listen{C2S: "127.0.0.1:5222", C2SDirect: "127.0.0.1:5223", HTTP: "127.0.0.1:5280", S2S: "127.0.0.1:5269", Admin: "127.0.0.1:5281"},
		API:     API{Enabled: true, WebListener: true},
		Storage: Store{Backend: "sqlite"},
		Presence: Presence{
			Backend: "memory",
			Redis:   "127.0.0.1:6379",
			Prefix:  "xmppd:",
			TTL:     30 * time.Second,
		},
		Auth: Auth{
			Iterations:         4096,
			FailureDelay:       time.Second,
			MaxFailures:        5,
			MaxAccountFailures: 10,
			FailureWindow:      10 * time.Minute,
		},
		Limits: Limits{
			MaxStanzaSize:         256 << 10,
			MaxUnauthPerIP:        32,
			ConnRatePerIP:         10,
			ConnBurstPerIP:        100,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxSessionsPerAccount: 10,
			SMResumeTimeout:       5 * time.Minute,
			SMMaxUnacked:          xmpp.DefaultSMMaxUnacked,
			ReadRate:              100 << 10,
			ReadBurst:             512 << 10,
			NegotiationTimeout:    30 * time.Second,
			PingInterval:          2 * time.Minute,
			PingTimeout:           30 * time.Second,
			QueueSize:             xmpp.DefaultQueueSize,
			QueueBytes:            1 << 20,
			MaxRosterItems:        1000,
			MaxOfflineMessages:    500,
			MaxOfflineBytes:       1 << 30,
			MaxDirectedPresences:  100,
			MaxVCardBytes:         64 << 10,
			MaxPrivateBytes:       64 << 10,
			MaxPrivateElements:    100,
			MaxPEPNodes:           200,
			MaxPEPItems:           256,
			MaxPEPItemBytes:       128 << 10,
		},
		MUC:     MUC{Enabled: true, MaxRoomsPerOwner: 100},
		Archive: Archive{Enabled: true, Default: "always"},
		Upload: Upload{
			Enabled:         true,
			MaxFileSize:     20 << 20,
			QuotaPerAccount: 1 << 30,
			FileLifetime:    30 * 24 * time.Hour,
			MinPutRate:      upload.DefaultMinPutRate,
			PutGrace:        upload.DefaultPutGrace,
		},
		Registration: Registration{PerAddress: 1, Window: time.Hour},
		Contact: Contact{
			Abuse:    []string{},
			Admin:    []string{},
			Feedback: []string{},
			Sales:    []string{},
			Security: []string{},
			Support:  []string{},
		},
		S2S: S2S{
			Enabled:        true,
			Routes:         map[string]string{},
			Allow:          []string{},
			Deny:           []string{},
			IdleTimeout:    10 * time.Minute,
			ConnectTimeout: 30 * time.Second,

			MaxConnecting:          xmpp.DefaultS2SMaxConnecting,
			MaxConnectingPerSender: xmpp.DefaultS2SMaxConnectingPerSender,
			MaxWaiting:             xmpp.DefaultS2SMaxWaiting,
			MaxWaitingPerSender:    xmpp.DefaultS2SMaxWaitingPerSender,
			QueueSize:              xmpp.DefaultS2SQueueSize,
		},
		HTTP: HTTP{
			AllowedOrigins: []string{},
			SecureNetworks: []string{"127.0.0.0/8", "::1"},
			TrustedProxies: []string{},
			WebClient:      true,
			WebClientDir:   "web",
			IdleTimeout:    60 * time.Second,
			BOSH: BOSH{
				MaxWait:    60 * time.Second,
				MaxHold:    1,
				Inactivity: 60 * time.Second,
				MaxPause:   120 * time.Second,
			},
		},
		Log:     Log{Level: "info"},
		Metrics: Metrics{Enabled: true},
	}
}

// Load reads path over the defaults; an empty path gives the defaults.
func Load(path string) (Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	d := yaml.NewDecoder(f)
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if l := &c.Limits; l.MaxConnsPerIP != 0 && l.MaxUnauthPerIP == Default().Limits.MaxUnauthPerIP {
		l.MaxUnauthPerIP = l.MaxConnsPerIP
	}
	return c, c.Validate()
}

// Validate checks values that no default can fix.
func (c Config) Validate() error {
	if c.Domain == "" {
		return errors.New("config: domain is empty")
	}
	switch c.Storage.Backend {
	case "sqlite", "":
	case "postgres":
		if c.Storage.Postgres == "" {
			return errors.New("config: storage.backend is postgres but storage.postgres_dsn is empty")
		}
	default:
		return fmt.Errorf("config: unknown storage.backend %q", c.Storage.Backend)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return err
	}
	switch c.Presence.Backend {
	case "memory", "":
	case "redis":
		if c.Presence.Redis == "" {
			return errors.New("config: presence.backend is redis but presence.redis is empty")
		}
	default:
		return fmt.Errorf("config: unknown presence.backend %q", c.Presence.Backend)
	}
	switch c.Archive.Default {
	case "always", "never", "roster":
	default:
		return fmt.Errorf("config: archive.default is %q, want always, never or roster", c.Archive.Default)
	}
	if c.Archive.MaxAge < 0 {
		return fmt.Errorf("config: archive.max_age is negative")
	}
	if _, err := c.HTTP.Policy(); err != nil {
		return err
	}
	if err := c.Contact.check(); err != nil {
		return err
	}
	// The secret file is read only by those that need it (TokenSecret), so
	// that xmppctl's user commands work without read access to it.
	t := c.Auth.Tokens
	if t.Secret != "" && t.SecretFile != "" {
		return errors.New("config: auth.tokens.secret and auth.tokens.secret_file are both set")
	}
	if t.Secret != "" && len(t.Secret) < apptoken.MinSecretSize {
		return fmt.Errorf("config: auth.tokens.secret is %d bytes, want at least %d", len(t.Secret), apptoken.MinSecretSize)
	}
	if c.S2S.DialbackSecret != "" && c.S2S.DialbackSecretFile != "" {
		return errors.New("config: s2s.dialback_secret and s2s.dialback_secret_file are both set")
	}
	return nil
}

// DialbackSecret returns the key of dialback keys from s2s.dialback_secret
// or the file s2s.dialback_secret_file (without trailing line breaks), or
// nil for a random one at each start. A file is how the nodes of a cluster
// share one key without writing it into their configuration: a remote
// server may verify a key with any node (XEP-0220 §2.3), so each must be
// able to recompute what another issued.
func (c Config) DialbackSecret() ([]byte, error) {
	s := c.S2S
	switch {
	case s.DialbackSecret != "" && s.DialbackSecretFile != "":
		return nil, errors.New("config: s2s.dialback_secret and s2s.dialback_secret_file are both set")
	case s.DialbackSecretFile != "":
		b, err := os.ReadFile(s.DialbackSecretFile)
		if err != nil {
			return nil, fmt.Errorf("config: s2s.dialback_secret_file: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			// Empty would mean a random key per node: dialback between
			// the cluster and other servers would fail most of the time.
			return nil, fmt.Errorf("config: s2s.dialback_secret_file %s is empty", s.DialbackSecretFile)
		}
		return b, nil
	case s.DialbackSecret != "":
		return []byte(s.DialbackSecret), nil
	}
	return nil, nil
}

// TokenSecret returns the key for sign-in tokens from auth.tokens.secret or
// the file auth.tokens.secret_file (without trailing line breaks), or nil
// when tokens are off.
func (c Config) TokenSecret() ([]byte, error) {
	t := c.Auth.Tokens
	switch {
	case t.Secret != "" && t.SecretFile != "":
		return nil, errors.New("config: auth.tokens.secret and auth.tokens.secret_file are both set")
	case t.SecretFile != "":
		b, err := os.ReadFile(t.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("config: auth.tokens.secret_file: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) < apptoken.MinSecretSize {
			return nil, fmt.Errorf("config: the secret in %s is %d bytes, want at least %d", t.SecretFile, len(b), apptoken.MinSecretSize)
		}
		return b, nil
	case t.Secret != "":
		if len(t.Secret) < apptoken.MinSecretSize {
			return nil, fmt.Errorf("config: auth.tokens.secret is %d bytes, want at least %d", len(t.Secret), apptoken.MinSecretSize)
		}
		return []byte(t.Secret), nil
	}
	return nil, nil
}

// CertFiles returns the certificate and key paths, defaulting into DataDir.
func (c Config) CertFiles() (cert, key string) {
	cert, key = c.TLS.Cert, c.TLS.Key
	if cert == "" {
		cert = filepath.Join(c.DataDir, "cert.pem")
	}
	if key == "" {
		key = filepath.Join(c.DataDir, "key.pem")
	}
	return cert, key
}

// OpenStore opens the configured storage backend, applying migrations.
func (c Config) OpenStore(ctx context.Context) (storage.Store, error) {
	if c.Storage.Backend == "postgres" {
		return postgres.Open(ctx, c.Storage.Postgres)
	}
	path := c.SQLitePath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, path)
}

// SQLitePath is the embedded database's file: storage.sqlite, else
// xmppd.db in the data directory.
func (c Config) SQLitePath() string {
	if c.Storage.SQLite != "" {
		return c.Storage.SQLite
	}
	return filepath.Join(c.DataDir, "xmppd.db")
}

// OpenRegistry opens the configured presence and session registry: in
// memory unless presence.backend is redis. With redis it fails when Redis
// does not answer.
func (c Config) OpenRegistry(ctx context.Context) (storage.Registry, error) {
	if c.Presence.Backend != "redis" {
		return memory.NewRegistry(c.Presence.Node), nil
	}
	r, err := redis.Open(ctx, redis.Options{
		Addr:   c.Presence.Redis,
		Prefix: c.Presence.Prefix,
		Node:   c.Presence.Node,
		TTL:    c.Presence.TTL,
	})
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return r, nil
}

// Level is Log.Level, which Validate has checked (info if it is empty).
func (c Config) Level() slog.Level {
	l, _ := parseLevel(c.Log.Level)
	return l
}

// parseLevel reads a log level; a typo is an error rather than a silent
// info, which would hide the debug lines someone asked for.
func parseLevel(s string) (slog.Level, error) {
	if s == "" {
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo, fmt.Errorf("config: log.level %q is not debug, info, warn or error", s)
	}
	return l, nil
}
