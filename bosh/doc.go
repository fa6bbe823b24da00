// Package bosh serves XMPP client streams over BOSH: XEP-0124
// (Bidirectional-streams Over Synchronous HTTP) with XEP-0206 (XMPP Over
// BOSH). A BOSH session turns the client's HTTP requests into one stream
// for xmpp.Server.ServeConn and the server's stream into HTTP responses, so
// that everything above the transport is the same as over TCP.
package bosh
