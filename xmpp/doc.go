// Package xmpp is the core of xmppd: client listeners, stream negotiation
// (RFC 6120 §4–§7, through mellium.im/xmpp and mellium.im/sasl), the Session
// of each client stream, the Router that alone decides where a stanza goes
// (RFC 6120 §10, RFC 6121 §8), stanza and stream errors, and the module API
// through which every XEP is added. The core itself names no XEP.
package xmpp
