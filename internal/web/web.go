// Package web is xmppd's HTTP listener: the WebSocket (RFC 7395) and BOSH
// (XEP-0124/0206) endpoints, their discovery (XEP-0156 host-meta), and the
// bundled web client (Converse.js) at /chat/.
package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/xmppd/xmppd/bosh"
	"github.com/xmppd/xmppd/xmpp"
)

// The endpoints' paths.
const (
	PathWebSocket = "/ws"
	PathBOSH      = "/http-bind"
	PathChat      = "/chat/"
)

// XEP-0156 link relations.
const (
	relBOSH      = "urn:xmpp:alt-connections:xbosh"
	relWebSocket = "urn:xmpp:alt-connections:websocket"
)

// Options configure the listener.
type Options struct {
	Server *xmpp.Server
	// Policy decides origins and security; nil is the zero WebPolicy.
	Policy *xmpp.WebPolicy
	// BOSH serves /http-bind; nil gives one with the defaults.
	BOSH *bosh.Handler
	// ClientDir is the folder of the web client: chat/index.html and
	// node_modules/converse.js/dist (installed by `make web`). Empty: no
	// web client.
	ClientDir string
}

// Handler serves every endpoint of the HTTP listener.
func Handler(o Options) http.Handler {
	if o.Policy == nil {
		o.Policy = &xmpp.WebPolicy{}
	}
	if o.BOSH == nil {
		o.BOSH = &bosh.Handler{}
	}
	o.BOSH.Server, o.BOSH.Policy = o.Server, o.Policy
	mux := http.NewServeMux()
	ws := o.Server.WebSocketHandler(o.Policy)
	mux.Handle(PathWebSocket, ws)
	mux.Handle("/xmpp-websocket", ws)
	mux.Handle(PathBOSH, o.BOSH)
	mux.Handle(PathBOSH+"/", o.BOSH)
	mux.HandleFunc("/.well-known/host-meta", func(w http.ResponseWriter, r *http.Request) {
		hostMeta(w, r, o.Policy, false)
	})
	mux.HandleFunc("/.well-known/host-meta.json", func(w http.ResponseWriter, r *http.Request) {
		hostMeta(w, r, o.Policy, true)
	})
	if o.ClientDir != "" {
		c := &chat{dir: o.ClientDir, domain: o.Server.Domain, policy: o.Policy}
		mux.Handle(PathChat, c)
		mux.Handle("/chat", http.RedirectHandler(PathChat, http.StatusFound))
	}
	// What modules serve (the upload service), below the paths above.
	mux.Handle("/", o.Server.ModuleHTTP())
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "xmppd serves XMPP for %s here: WebSocket at %s, BOSH at %s", o.Server.Domain, PathWebSocket, PathBOSH)
		if o.ClientDir != "" {
			fmt.Fprintf(w, ", and a web client at %s", PathChat)
		}
		fmt.Fprintln(w, ".")
	})
	return mux
}

// endpoints are the URLs of both transports as the client reaches them.
func endpoints(r *http.Request, p *xmpp.WebPolicy) (boshURL, wsURL string) {
	origin := p.PublicOrigin(r)
	return origin + PathBOSH, "ws" + strings.TrimPrefix(origin, "http") + PathWebSocket
}

// hostMeta is XEP-0156 §3: the connection methods, in XRD or JRD (RFC
// 6415), readable by pages of any origin.
func hostMeta(w http.ResponseWriter, r *http.Request, p *xmpp.WebPolicy, asJSON bool) {
	boshURL, wsURL := endpoints(r, p)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		type link struct {
			Rel  string `json:"rel"`
			Href string `json:"href"`
		}
		json.NewEncoder(w).Encode(map[string][]link{"links": {{relBOSH, boshURL}, {relWebSocket, wsURL}}})
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
	b := []byte(`<?xml version="1.0" encoding="utf-8"?>` + "\n" + `<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">` + "\n")
	for _, l := range [][2]string{{relBOSH, boshURL}, {relWebSocket, wsURL}} {
		b = append(b, `  <Link rel="`+l[0]+`" href="`...)
		b = xmpp.AppendEscaped(b, l[1])
		b = append(b, "\"/>\n"...)
	}
	b = append(b, "</XRD>\n"...)
	w.Write(b)
}

// chat serves the web client: its page, a config.js naming this server's
// endpoints, and Converse.js's files.
type chat struct {
	dir    string
	domain string
	policy *xmpp.WebPolicy
}

func (c *chat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, PathChat)
	dist := filepath.Join(c.dir, "node_modules", "converse.js", "dist")
	switch {
	case rest == "config.js":
		boshURL, wsURL := endpoints(r, c.policy)
		cfg, _ := json.Marshal(map[string]string{"domain": c.domain, "bosh": boshURL, "websocket": wsURL})
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "window.XMPPD = %s;\n", cfg)
	case strings.HasPrefix(rest, "dist/"):
		http.StripPrefix(PathChat+"dist/", http.FileServer(http.Dir(dist))).ServeHTTP(w, r)
	case rest == "" || rest == "index.html":
		if _, err := os.Stat(filepath.Join(dist, "converse.min.js")); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "The web client (Converse.js) is not installed in %s: run `make web` in xmppd's source folder, or set http.web_client_dir.\n", c.dir)
			return
		}
		http.ServeFile(w, r, filepath.Join(c.dir, "chat", "index.html"))
	default:
		http.StripPrefix(PathChat, http.FileServer(http.Dir(filepath.Join(c.dir, "chat")))).ServeHTTP(w, r)
	}
}
