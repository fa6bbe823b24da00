package bosh

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// Defaults for the zero values of Handler's fields.
const (
	DefaultMaxWait    = 60 * time.Second
	DefaultMaxHold    = 1
	DefaultInactivity = 60 * time.Second
	DefaultMaxPause   = 120 * time.Second
	DefaultPolling    = 2 * time.Second
)

// A Handler is the BOSH endpoint (usually at /http-bind). Set its fields
// before serving.
type Handler struct {
	// Server serves the streams; required.
	Server *xmpp.Server
	// Policy decides which pages may connect (CORS) and which requests are
	// secure; nil is the zero WebPolicy.
	Policy *xmpp.WebPolicy
	// MaxWait caps the longest time a request is held (the client's wait).
	MaxWait time.Duration
	// MaxHold caps how many requests are held at once (the client's hold).
	MaxHold int
	// Inactivity is how long a session may have no request before it ends.
	Inactivity time.Duration
	// MaxPause caps a client's pause (§10).
	MaxPause time.Duration
	// Polling is the shortest interval between empty requests of a client
	// that holds none (§11).
	Polling time.Duration
	// MaxBodySize bounds one request; zero: the server's stanza limit plus
	// room for the wrapper.
	MaxBodySize int

	once     sync.Once
	mu       sync.Mutex
	sessions map[string]*session
	local    net.Addr
}

func (h *Handler) init() {
	h.once.Do(func() {
		h.sessions = make(map[string]*session)
		if h.Policy == nil {
			h.Policy = &xmpp.WebPolicy{}
		}
		if h.MaxBodySize <= 0 {
			h.MaxBodySize = xmpp.DefaultMaxStanzaSize + 8<<10
			if n := h.Server.StanzaLimit(); n > 0 {
				h.MaxBodySize = n + 8<<10
			}
		}
		h.local = &net.TCPAddr{}
	})
}

func or[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (h *Handler) polling() time.Duration  { return or(h.Polling, DefaultPolling) }
func (h *Handler) maxPause() time.Duration { return or(h.MaxPause, DefaultMaxPause) }
func (h *Handler) log() *slog.Logger       { return h.Server.Log() }

// Sessions is how many BOSH sessions are open.
func (h *Handler) Sessions() int {
	h.init()
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	if !h.cors(w, r) {
		return
	}
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent) // a preflight, answered by cors
		return
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "This is the XMPP over BOSH endpoint (XEP-0124, XEP-0206): POST <body/> elements here.\n")
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.MaxBodySize)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.write(w, http.StatusOK, terminateBody(PolicyViolation))
			return
		}
		return // the client went away
	}
	b, err := parseBody(data)
	if err != nil {
		h.write(w, http.StatusBadRequest, terminateBody(BadRequest))
		return
	}
	rid, ok := b.int("rid")
	if !ok {
		h.write(w, http.StatusBadRequest, terminateBody(BadRequest))
		return
	}
	sid := b.attr["sid"]
	if sid == "" {
		h.create(w, r, rid, b)
		return
	}
	h.mu.Lock()
	s := h.sessions[sid]
	h.mu.Unlock()
	if s == nil {
		h.write(w, http.StatusNotFound, terminateBody(ItemNotFound))
		return
	}
	ch, now, terminal := s.handle(rid, b)
	h.respond(w, r, s, ch, now, terminal)
}

// respond writes what handle decided: a response now, or the one that
// arrives on ch within the session's wait.
func (h *Handler) respond(w http.ResponseWriter, r *http.Request, s *session, ch chan []byte, now []byte, terminal bool) {
	if ch == nil {
		status := http.StatusOK
		if terminal && s.legacy {
			if code, ok := legacyStatus[conditionOf(now)]; ok {
				status = code
			}
		}
		h.write(w, status, now)
		return
	}
	timer := time.NewTimer(s.wait)
	defer timer.Stop()
	for {
		select {
		case b := <-ch:
			h.write(w, http.StatusOK, b)
			return
		case <-timer.C:
			if b := s.timeout(ch); b != nil {
				h.write(w, http.StatusOK, b)
				return
			}
		case <-r.Context().Done():
			return // the response is kept for a repeated rid
		}
	}
}

// conditionOf reads the condition of a terminate body.
func conditionOf(body []byte) Condition {
	const attr = `condition="`
	s := string(body)
	i := strings.Index(s, attr)
	if i < 0 {
		return ""
	}
	s = s[i+len(attr):]
	return Condition(s[:strings.IndexByte(s, '"')])
}

// create starts a session (§7.1, XEP-0206 §4).
func (h *Handler) create(w http.ResponseWriter, r *http.Request, rid int64, b *body) {
	if b.attr["to"] != h.Server.Domain {
		h.write(w, http.StatusOK, terminateBody(HostUnknown))
		return
	}
	wait, ok := b.int("wait")
	hold, ok2 := b.int("hold")
	if !ok || !ok2 {
		h.write(w, http.StatusBadRequest, terminateBody(BadRequest))
		return
	}
	addr, secure := h.Policy.Client(r)
	// A session is a stream as a connection is: one kept-alive connection
	// posting creations pays the connection rate for each (XEP-0124 §17:
	// policy-violation, with the stream error a refused TCP stream gets).
	if refusal, ok := h.Server.AdmitWebStream(r, addr); !ok {
		status := http.StatusOK
		if olderThan16(b.attr["ver"]) {
			status = legacyStatus[PolicyViolation]
		}
		h.write(w, status, terminateBody(PolicyViolation, refusal.Append(nil)))
		return
	}
	s := &session{
		h:          h,
		sid:        newSID(),
		to:         b.attr["to"],
		lang:       b.attr["xml:lang"],
		addr:       addr,
		secure:     secure,
		wait:       min(time.Duration(wait)*time.Second, or(h.MaxWait, DefaultMaxWait)),
		hold:       int(min(hold, int64(or(h.MaxHold, DefaultMaxHold)))),
		inactivity: or(h.Inactivity, DefaultInactivity),
		acks:       b.attr["ack"] != "",
		legacy:     olderThan16(b.attr["ver"]),
		readable:   make(chan struct{}, 1),
		writable:   make(chan struct{}, 1),
		gone:       make(chan struct{}),
		next:       rid,
		waiting:    make(map[int64]*request),
	}
	s.requests = s.hold + 1
	if s.lang == "" {
		s.lang = "en"
	}
	s.in = xmpp.AppendStreamOpen(nil, xmpp.StreamHeader{To: s.to, Version: "1.0", Lang: s.lang})
	h.mu.Lock()
	h.sessions[s.sid] = s
	h.mu.Unlock()
	h.log().Debug("BOSH session created", "sid", s.sid, "remote", addr.String(), "secure", secure)

	req := newRequest(rid, b)
	req.create = true
	s.mu.Lock()
	s.process(req)
	s.mu.Unlock()
	go h.Server.ServeConn(s, secure)
	h.respond(w, r, s, req.resp, nil, false)
}

// olderThan16 reports whether a client's ver predates XEP-0124 1.6, when
// errors were HTTP status codes (§17.1); no ver is such a client.
func olderThan16(ver string) bool {
	major, minor, ok := strings.Cut(ver, ".")
	if !ok {
		return true
	}
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return true
	}
	return ma < 1 || ma == 1 && mi < 6
}

func (h *Handler) remove(sid string) {
	h.mu.Lock()
	delete(h.sessions, sid)
	h.mu.Unlock()
}

func (h *Handler) write(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}

// cors answers cross-origin checks: pages from allowed origins may use the
// endpoint; others are refused.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if !h.Policy.OriginAllowed(r) {
		http.Error(w, "origin not allowed: add it to http.allowed_origins", http.StatusForbidden)
		return false
	}
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", origin)
	hd.Add("Vary", "Origin")
	if r.Method == http.MethodOptions {
		hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		hd.Set("Access-Control-Allow-Headers", "Content-Type")
		hd.Set("Access-Control-Max-Age", "86400")
	}
	return true
}

func newSID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
