package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// A Check is one thing the server needs to serve: Func returns nil while
// it works.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// probeAccount is a bare JID no account can have (RFC 7622: ".invalid" is
// reserved), so that looking it up reads an index and finds nothing.
const probeAccount = "readiness-probe@probe.invalid"

// StoreCheck asks st for the credentials of an account that does not
// exist: a cheap indexed read on every backend, which fails when the
// database does not answer (or the store is closed).
func StoreCheck(st storage.Store) Check {
	return Check{Name: "storage", Func: func(ctx context.Context) error {
		_, err := st.Credentials(ctx, probeAccount)
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	}}
}

// PingCheck is a Check of something that answers a ping (the Redis
// presence registry).
func PingCheck(name string, p interface{ Ping(context.Context) error }) Check {
	return Check{Name: name, Func: p.Ping}
}

// ServerCheck fails once srv has begun to shut down, so that a load
// balancer stops sending it clients before its streams close.
func ServerCheck(srv *xmpp.Server) Check {
	return Check{Name: "server", Func: func(context.Context) error {
		if ctx := srv.Context(); ctx != nil && ctx.Err() != nil {
			return errors.New("shutting down")
		}
		return nil
	}}
}

// DefaultProbeTimeout bounds a readiness check.
const DefaultProbeTimeout = 2 * time.Second

// Probes answer /healthz and /readyz.
type Probes struct {
	// Checks must all pass for the server to be ready.
	Checks []Check
	// Timeout bounds each check; zero: DefaultProbeTimeout.
	Timeout time.Duration
}

// Healthz answers 200 "ok" while the process serves HTTP at all: a
// liveness probe, which should restart the process only when it hangs.
func (p *Probes) Healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n"))
}

// readiness is /readyz's body: "ok" or "unavailable", and each check's
// "ok" or error.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Readyz runs the checks at once and answers 200 when all pass, else 503;
// the JSON body names each check with "ok" or what failed.
func (p *Probes) Readyz(w http.ResponseWriter, r *http.Request) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	res := readiness{Status: "ok", Checks: make(map[string]string, len(p.Checks))}
	errs := make([]error, len(p.Checks))
	var wg sync.WaitGroup
	for i, c := range p.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Func(ctx)
		}()
	}
	wg.Wait()
	status := http.StatusOK
	for i, c := range p.Checks {
		if errs[i] != nil {
			res.Checks[c.Name] = errs[i].Error()
			res.Status = "unavailable"
			status = http.StatusServiceUnavailable
		} else {
			res.Checks[c.Name] = "ok"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(res)
}

// Register serves /healthz and /readyz from p on mux, and /metrics from m
// unless m is nil (metrics.enabled: false). mux should be the admin
// listener's, which is on loopback by default: the metrics name accounts'
// activity in aggregate and must not be open to the internet
// (docs/SECURITY.md).
func Register(mux *http.ServeMux, m *Metrics, p *Probes) {
	mux.HandleFunc("GET /healthz", p.Healthz)
	mux.HandleFunc("GET /readyz", p.Readyz)
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
}
