package main

import (
	"context"
	"net"
	"net/http"

	"github.com/gorilla/websocket"

	"github.com/xmppd/xmppd/internal/wsclient"
)

// dialWebSocket opens the WebSocket (RFC 7395) with the xmpp subprotocol, as
// a connection carrying a classic stream, so that login and the scenarios
// are the same for both transports. TLS (wss://) is the transport's, so
// login skips STARTTLS.
func dialWebSocket(ctx context.Context, cfg *config, src net.IP) (net.Conn, error) {
	d := websocket.Dialer{
		Subprotocols:     []string{"xmpp"},
		HandshakeTimeout: cfg.timeout,
		TLSClientConfig:  cfg.tls,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{Timeout: cfg.timeout}
			if src != nil {
				nd.LocalAddr = &net.TCPAddr{IP: src}
			}
			return nd.DialContext(ctx, network, addr)
		},
		ReadBufferSize:  2048,
		WriteBufferSize: 2048,
	}
	ws, resp, err := d.DialContext(ctx, cfg.url, http.Header{})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return wsclient.New(ws, cfg.domain), nil
}
