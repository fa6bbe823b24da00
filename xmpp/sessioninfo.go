package xmpp

import "time"

// Transports a client session can be carried by (Session.Transport).
const (
	TransportTCP       = "tcp"       // STARTTLS (RFC 6120 §5)
	TransportDirectTLS = "tls"       // TLS from the first byte (XEP-0368)
	TransportWebSocket = "websocket" // RFC 7395
	TransportBOSH      = "bosh"      // XEP-0124/0206
)

// LocalSessions returns every session bound on this node, hibernated ones
// included, for administration: what a session offers is read-only, and
// Close.
func (s *Server) LocalSessions() []*Session {
	var all []*Session
	s.router.each(func(sess *Session) { all = append(all, sess) })
	return all
}

// Since is when the session was bound; a resumed session keeps the time of
// its first binding.
func (s *Session) Since() time.Time { return time.Unix(0, s.since) }

// RemoteAddr is the client's address, from its current (or, hibernated,
// its last) connection: for the web transports the one the HTTP listener
// vouched for (trusted proxies' X-Forwarded-For).
func (s *Session) RemoteAddr() string { return s.c().remote }

// Transport names what carries the session: TransportTCP,
// TransportDirectTLS, or the web transport's own name (TransportWebSocket,
// TransportBOSH) which its connection reports.
func (s *Session) Transport() string {
	c := s.c()
	if t, ok := c.raw.(interface{ Transport() string }); ok {
		return t.Transport()
	}
	switch c.mode {
	case plainTCP:
		return TransportTCP
	case directTLS:
		return TransportDirectTLS
	}
	return "web"
}
