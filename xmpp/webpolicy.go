package xmpp

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// A WebPolicy decides, for the web transports (WebSocket and BOSH), which
// pages may connect and which requests count as secure. The zero value
// allows pages from loopback origins and from the server's own origin, and
// treats every plain-HTTP request as insecure.
type WebPolicy struct {
	// Origins are the origins ("https://app.example.com") whose pages may
	// connect; "*" allows any. With none, pages served from loopback
	// addresses (any port) may connect, so that an app in development on
	// the same machine just works. A page from the server's own origin may
	// always connect, and so may a client that sends no Origin (not a
	// browser).
	Origins []string
	// SecureNetworks are where plain-HTTP requests count as secure for
	// authentication: typically a TLS-terminating reverse proxy on the same
	// host (Prosody calls this secure_interfaces).
	SecureNetworks []netip.Prefix
	// TrustedProxies may tell the client's address and scheme in
	// X-Forwarded-For and X-Forwarded-Proto.
	TrustedProxies []netip.Prefix
}

// LoopbackNetworks are 127.0.0.0/8 and ::1.
var LoopbackNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// OriginAllowed reports whether the page that made r may connect.
func (p *WebPolicy) OriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, p.host(r)) {
		return true // the server's own pages
	}
	if len(p.Origins) == 0 {
		if u.Scheme != "http" && u.Scheme != "https" {
			return false
		}
		h := u.Hostname()
		if strings.EqualFold(h, "localhost") {
			return true
		}
		a, err := netip.ParseAddr(h)
		return err == nil && a.IsLoopback()
	}
	for _, o := range p.Origins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// host is the host (and port) the client asked for.
func (p *WebPolicy) host(r *http.Request) string {
	if h := r.Header.Get("X-Forwarded-Host"); h != "" && p.fromProxy(r) {
		return strings.TrimSpace(strings.Split(h, ",")[0])
	}
	return r.Host
}

// Client returns the client's address and whether its request is secure:
// made over HTTPS, from a secure network, or through a trusted proxy that
// says the client used HTTPS.
func (p *WebPolicy) Client(r *http.Request) (addr net.Addr, secure bool) {
	peer := peerAddr(r)
	addr = net.TCPAddrFromAddrPort(peer)
	if p.fromProxy(r) {
		if f := lastForwarded(r.Header.Get("X-Forwarded-For")); f.IsValid() {
			addr = &net.TCPAddr{IP: f.AsSlice()}
		}
		if strings.EqualFold(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]), "https") {
			return addr, true
		}
	}
	if r.TLS != nil {
		return addr, true
	}
	return addr, contains(p.SecureNetworks, peer.Addr())
}

func (p *WebPolicy) fromProxy(r *http.Request) bool {
	return contains(p.TrustedProxies, peerAddr(r).Addr())
}

func peerAddr(r *http.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// lastForwarded is the address the proxy itself saw: the last one in
// X-Forwarded-For (the earlier ones are the client's word).
func lastForwarded(h string) netip.Addr {
	if h == "" {
		return netip.Addr{}
	}
	parts := strings.Split(h, ",")
	a, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1]))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func contains(nets []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// PublicOrigin is the scheme and host the client used to reach the server
// ("https://chat.example.com"), as a trusted proxy tells it or the request
// shows; the discovery documents and the web client name endpoints from it.
func (p *WebPolicy) PublicOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p.fromProxy(r) {
		if proto := strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]); proto == "https" || proto == "http" {
			scheme = proto
		}
	}
	return scheme + "://" + p.host(r)
}
