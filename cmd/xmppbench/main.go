// Command xmppbench is a load generator for any XMPP server: it signs in
// many clients over STARTTLS and SASL (SCRAM or PLAIN) and measures logins,
// memory per idle session, one-to-one chat throughput and latency, and how
// fast a team sees itself come online. It prints progress on standard error
// and one JSON object per scenario on standard output. See
// docs/BENCHMARKS.md.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is what every scenario needs, from the flags.
type config struct {
	server      string   // label in the results
	addrs       []string // -addr: client i connects to addrs[i%len(addrs)]
	url         string
	domain      string
	userPattern string // with one %d
	first       int
	password    string
	mech        string
	resource    string
	clients     int
	concurrency int
	sources     []net.IP
	pid         int
	cpuPIDs     []int // chat: the processes whose CPU each step reports (the nodes)
	rates       []int
	room        string // muc: the room's JID
	senders     int    // muc: how many occupants send
	step        time.Duration
	drain       time.Duration
	settle      time.Duration
	warm        bool
	timeout     time.Duration
	tls         *tls.Config
	curves      string // -curves: which key exchange the client offers
	sm          bool   // -sm: clients enable stream management (XEP-0198)
	pairs       string // -pairs: who a chat client writes to (pairs.go)
	saltCache   *saltCache
	progress    io.Writer
	out         io.Writer // standard output, for the soak's sample lines
	boshURL     string    // -bosh-url: the soak's BOSH clients connect there
	soak        soakOptions

	// team: logins started per second (0: -concurrency at a time), how
	// long to wait for every presence after the last login, and the
	// command name of the database's processes, whose CPU is reported too.
	rate          int
	settleTimeout time.Duration
	dbComm        string
}

func (c *config) user(i int) string { return fmt.Sprintf(c.userPattern, c.first+i) }

// addr is the server address of the i-th client: the addresses in turn,
// so that with several nodes client i is on node i modulo their number.
func (c *config) addr(i int) string { return c.addrs[i%len(c.addrs)] }

// source is the local address of the i-th connection: the sources in turn,
// so that many connections do not run out of one address's ports.
func (c *config) source(i int) net.IP {
	if len(c.sources) == 0 {
		return nil
	}
	return c.sources[i%len(c.sources)]
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, scenarios, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "xmppbench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg.out = stdout
	timeout := cfg.timeout
	if slices.Contains(scenarios, "soak") {
		// The soak runs for its -duration; -timeout bounds the rest.
		timeout += cfg.soak.duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	enc := json.NewEncoder(stdout)
	status := 0
	for _, name := range scenarios {
		res, err := scenarioFuncs[name](ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "xmppbench: %s: %v\n", name, err)
			status = 1
			if res == nil {
				res = errorResult(name, cfg, err)
			}
		}
		enc.Encode(res)
	}
	return status
}

// errorResult is the line of a scenario that gave no result: its error,
// and the settings that tell its variant apart, as in its result (the
// table puts it in that variant's row).
func errorResult(name string, cfg *config, err error) map[string]any {
	res := map[string]any{"scenario": name, "server": cfg.server, "error": err.Error()}
	switch name {
	case "login":
		res["mech"] = cfg.mech
	case "idle":
		res["curves"] = cfg.curves
		if cfg.sm {
			res["stream_management"] = true
		}
	case "team":
		res["clients"] = cfg.clients
		if cfg.rate > 0 {
			res["rate_per_s"] = cfg.rate
		} else {
			res["concurrency"] = cfg.concurrency
		}
	}
	return res
}

var scenarioFuncs = map[string]func(context.Context, *config) (any, error){
	"login": runLogin,
	"idle":  runIdle,
	"chat":  runChat,
	"muc":   runMUC,
	"team":  runTeam,
	"soak":  runSoak,
}

func parseFlags(args []string, stderr io.Writer) (*config, []string, error) {
	fs := flag.NewFlagSet("xmppbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{saltCache: new(saltCache), progress: stderr}
	scenario := fs.String("scenario", "login", "scenarios to run, comma-separated: login, idle, chat, muc, team, soak")
	fs.StringVar(&cfg.server, "server", "", "label for the server in the results")
	addrs := fs.String("addr", "127.0.0.1:5222", "the server's client-to-server address (STARTTLS); comma-separated, the addresses of several nodes of one cluster: client i (from 0) connects to address i modulo their number")
	fs.StringVar(&cfg.url, "url", "", "connect over WebSocket (RFC 7395) to this ws:// or wss:// URL instead of -addr")
	fs.StringVar(&cfg.domain, "domain", "localhost", "the server's XMPP domain")
	fs.StringVar(&cfg.userPattern, "user", "bench%d", "user name pattern; %d is replaced by the user's number")
	fs.IntVar(&cfg.first, "first", 1, "number of the first user")
	fs.StringVar(&cfg.password, "password", "benchpass", "every user's password")
	fs.StringVar(&cfg.mech, "mech", "SCRAM-SHA-1", "SASL mechanism: SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN")
	fs.StringVar(&cfg.resource, "resource", "bench", "resource to bind")
	fs.IntVar(&cfg.clients, "clients", 100, "number of clients (sessions for idle)")
	fs.IntVar(&cfg.concurrency, "concurrency", 50, "logins in flight at once")
	sources := fs.String("sources", "127.0.0.1", "local source addresses, comma-separated, used in turn")
	cpuPIDs := fs.String("cpu-pids", "", "chat: process IDs, comma-separated (a cluster's nodes), whose CPU time (user and system, from /proc) each step reports, summed, from its start until its messages are in; with -db-comm, that command's processes' too")
	fs.IntVar(&cfg.pid, "pid", 0, "the server's process ID, to read its memory and CPU time from /proc (idle, team)")
	rates := fs.String("rates", "1000,2000,5000,10000,20000", "chat: offered messages per second, one step each")
	fs.StringVar(&cfg.room, "room", "", "muc: the room's JID (default bench@conference.DOMAIN)")
	fs.IntVar(&cfg.senders, "senders", 10, "muc: how many of the occupants send")
	fs.DurationVar(&cfg.step, "step", 10*time.Second, "chat: how long each rate is offered")
	fs.DurationVar(&cfg.drain, "drain", 3*time.Second, "chat: how long to wait for messages after a step")
	fs.DurationVar(&cfg.settle, "settle", 3*time.Second, "idle, team: wait before reading memory")
	fs.IntVar(&cfg.rate, "rate", 0, "team: start this many logins per second (default: -concurrency at a time)")
	fs.DurationVar(&cfg.settleTimeout, "settle-timeout", time.Minute, "team: how long after the last login to wait until every member has seen every other's presence")
	fs.StringVar(&cfg.dbComm, "db-comm", "", "team, and chat with -cpu-pids: also report the CPU time of the processes with this command name (e.g. postgres, the server's database; redis-server, a cluster's bus)")
	fs.BoolVar(&cfg.warm, "warm", true, "login with SCRAM: sign every user in once, untimed, so that the tool's own PBKDF2 is cached")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "upper bound on the whole run (and on one login)")
	insecure := fs.Bool("insecure", true, "accept any server certificate (the targets are loopback servers with self-signed certificates)")
	ca := fs.String("ca", "", "PEM file of the certificate authority to trust (turns -insecure off)")
	fs.StringVar(&cfg.pairs, "pairs", pairsRandom, "chat: who each client writes to, with n addresses in -addr (client i on address i mod n). "+
		"random: each message to a random other client, about (n-1)/n of them to another address. "+
		"Fixed partners, both ways: cross: 2j with 2j+1, on two addresses when n >= 2 (-clients even, n >= 2); "+
		"local: i with i+n within each block of 2n clients, on one address (-clients a multiple of 2n); "+
		"half: blocks of 2n clients in turn cross then local, so exactly half the pairs are across addresses when n >= 2, none with one (-clients a multiple of 4n)")
	fs.StringVar(&cfg.boshURL, "bosh-url", "", "soak: the server's BOSH endpoint (XEP-0206), e.g. http://127.0.0.1:5280/http-bind")
	so := &cfg.soak
	transports := fs.String("transports", "tcp,ws,bosh", "soak: the transports clients use in turn, comma-separated: tcp (-addr), ws (-url), bosh (-bosh-url)")
	fs.DurationVar(&so.duration, "duration", 30*time.Minute, "soak: how long the clients stay and talk after they have signed in (bounded; -timeout adds to it)")
	fs.DurationVar(&so.sample, "sample-every", 30*time.Second, "soak: how often the server's memory, goroutines and open files are sampled")
	fs.StringVar(&so.metricsURL, "metrics-url", "http://127.0.0.1:5281/metrics", "soak: the server's Prometheus metrics (goroutines, heap, sessions); empty: none")
	fs.StringVar(&so.logPath, "log", "", "soak: the server's log file, whose ERROR and WARN lines written during the run are counted")
	fs.IntVar(&so.rooms, "rooms", 20, "soak: rooms soak0..soakN-1 at -room's service")
	fs.Float64Var(&so.roomShare, "room-share", 0.25, "soak: the fraction of clients that join rooms")
	fs.IntVar(&so.roomsEach, "rooms-each", 2, "soak: how many rooms each of them joins")
	fs.DurationVar(&so.msgEvery, "msg-every", 30*time.Second, "soak: each client sends a one-to-one message about this often (0: never)")
	fs.DurationVar(&so.presEvery, "presence-every", 2*time.Minute, "soak: each client changes its presence about this often (0: never)")
	fs.DurationVar(&so.roomEvery, "room-msg-every", 2*time.Minute, "soak: each client in rooms sends a room message about this often (0: never)")
	fs.DurationVar(&so.leaveEvery, "leave-every", 10*time.Minute, "soak: each client leaves (cleanly or abruptly, half each) and comes back about this often (0: never)")
	fs.DurationVar(&so.offline, "away", 10*time.Second, "soak: the longest a client that left stays away")
	fs.DurationVar(&so.settle, "soak-settle", 2*time.Minute, "soak: after everyone has left, how long to wait for the server to have no session (BOSH sessions that clients dropped end at the server's inactivity timeout) before the last sample")
	fs.DurationVar(&so.drain, "soak-drain", 30*time.Second, "soak: how long to wait for the last messages after the run")
	fs.BoolVar(&cfg.sm, "sm", false, "clients enable stream management (XEP-0198) with resumption after binding, and acknowledge what the server sends")
	fs.StringVar(&cfg.curves, "curves", "classic", "key exchange the client offers: classic (X25519 and P-256, as OpenSSL 3.0) or default (Go's default: the hybrid X25519MLKEM768 first, as Go, Chrome and OpenSSL 3.5 clients)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: xmppbench [flags]\n\nLoad generator for XMPP servers; one JSON result per scenario on stdout.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var scenarios []string
	for _, s := range strings.Split(*scenario, ",") {
		if _, ok := scenarioFuncs[s]; !ok {
			return nil, nil, fmt.Errorf("unknown scenario %q", s)
		}
		scenarios = append(scenarios, s)
	}
	if strings.Count(cfg.userPattern, "%d") != 1 {
		return nil, nil, fmt.Errorf("-user %q must contain %%d once", cfg.userPattern)
	}
	switch cfg.mech {
	case "SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN":
	default:
		return nil, nil, fmt.Errorf("unsupported -mech %q", cfg.mech)
	}
	if cfg.clients < 1 || cfg.concurrency < 1 {
		return nil, nil, errors.New("-clients and -concurrency must be positive")
	}
	if cfg.rate < 0 || cfg.settleTimeout <= 0 {
		return nil, nil, errors.New("-rate must not be negative, -settle-timeout must be positive")
	}
	for _, s := range strings.Split(*sources, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, nil, fmt.Errorf("-sources: %q is not an IP address", s)
		}
		cfg.sources = append(cfg.sources, ip)
	}
	for _, p := range strings.Split(*cpuPIDs, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, nil, fmt.Errorf("-cpu-pids: %q is not a process ID", p)
		}
		cfg.cpuPIDs = append(cfg.cpuPIDs, n)
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return nil, nil, fmt.Errorf("-rates: %q is not a positive number", r)
		}
		cfg.rates = append(cfg.rates, n)
	}
	for _, t := range strings.Split(*transports, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(soakTransports, t) {
			return nil, nil, fmt.Errorf("-transports: %q is not one of %v", t, soakTransports)
		}
		cfg.soak.transports = append(cfg.soak.transports, t)
	}
	if slices.Contains(scenarios, "soak") {
		so := &cfg.soak
		if so.duration <= 0 || so.sample <= 0 || so.roomShare < 0 || so.roomShare > 1 || so.rooms < 0 || so.roomsEach < 0 {
			return nil, nil, errors.New("soak: -duration and -sample-every must be positive, -room-share between 0 and 1, -rooms and -rooms-each not negative")
		}
		if slices.Contains(so.transports, "ws") && cfg.url == "" {
			return nil, nil, errors.New("soak: WebSocket clients (-transports ws) need -url")
		}
		if slices.Contains(so.transports, "bosh") && cfg.boshURL == "" {
			return nil, nil, errBOSHURL
		}
	}
	if cfg.room == "" {
		cfg.room = "bench@conference." + cfg.domain
	}
	for _, a := range strings.Split(*addrs, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, nil, fmt.Errorf("-addr: %w", err)
		}
		cfg.addrs = append(cfg.addrs, a)
	}
	if _, err := partners(cfg.pairs, cfg.clients, len(cfg.addrs)); err != nil {
		return nil, nil, fmt.Errorf("-pairs: %w", err)
	}
	cfg.tls = &tls.Config{ServerName: cfg.domain, MinVersion: tls.VersionTLS12, InsecureSkipVerify: *insecure}
	switch cfg.curves {
	case "classic":
		// The same key exchange with every server by default: X25519 (or
		// P-256), as OpenSSL 3.0 clients offer.
		cfg.tls.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	case "default":
		// Go's own list: X25519MLKEM768 first, whose key share makes the
		// ClientHello about 1.2 KB longer. Go, Chrome and OpenSSL 3.5
		// clients offer it by default.
	default:
		return nil, nil, fmt.Errorf("-curves %q: want classic or default", cfg.curves)
	}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return nil, nil, err
		}
		cfg.tls.RootCAs = newPool(pem)
		if cfg.tls.RootCAs == nil {
			return nil, nil, fmt.Errorf("-ca: no certificate in %s", *ca)
		}
		cfg.tls.InsecureSkipVerify = false
	}
	return cfg, scenarios, nil
}
