package xmpp

import (
	"strings"
	"time"
)

// Metrics receives what the core counts as it works: Server.Metrics, nil
// for none. The core calls it on the hot path (every stanza), so an
// implementation must be cheap, must not allocate, and must be safe for
// concurrent use; the counts the server keeps anyway (sessions, streams)
// are read when asked for, with Server.Stats, rather than reported here.
// The core knows no metrics library: internal/metrics implements this with
// Prometheus.
type Metrics interface {
	// StanzaIn counts a stanza received from a local client or a peer
	// server; StanzaOut one queued for a local client or for a peer server.
	StanzaIn(kind StanzaKind)
	StanzaOut(kind StanzaKind)
	// Routed reports how long a stanza took from being read to being
	// queued for its recipients or handed to federation (hooks included).
	Routed(kind StanzaKind, d time.Duration)
	// AuthFailed counts a failed SASL attempt: mechanism is the SASL name,
	// reason one of the AuthReason values.
	AuthFailed(mechanism string, reason AuthReason)
	// SessionDropped counts a session closed because its client did not
	// read what was queued for it (the queue's stanzas or bytes were full).
	SessionDropped()
	// StanzaDropped counts a stanza that a full queue refused.
	StanzaDropped(reason DropReason)
}

// A StanzaKind is one of the three stanzas of RFC 6120 §8.
type StanzaKind uint8

// The stanza kinds; NumStanzaKinds sizes arrays indexed by kind.
const (
	MessageStanza StanzaKind = iota
	PresenceStanza
	IQStanza
	NumStanzaKinds
)

var stanzaKindNames = [NumStanzaKinds]string{"message", "presence", "iq"}

func (k StanzaKind) String() string { return stanzaKindNames[k] }

// kindOf is the kind of a jabber:client or jabber:server element by its
// local name; ok is false for anything else.
func kindOf(local string) (StanzaKind, bool) {
	switch local {
	case "message":
		return MessageStanza, true
	case "presence":
		return PresenceStanza, true
	case "iq":
		return IQStanza, true
	}
	return 0, false
}

// An AuthReason classes why an authentication attempt failed, in few
// enough values to be a metric's label (the log says more).
type AuthReason uint8

const (
	// AuthCredentials: a wrong password or proof, or an unknown account
	// (which SCRAM does not tell apart, scram.go).
	AuthCredentials AuthReason = iota
	// AuthLocked: the account is locked after failures from many addresses.
	AuthLocked
	// AuthToken: an app token that did not verify.
	AuthToken
	// AuthStorage: the credentials could not be read.
	AuthStorage
	// AuthProtocol: a malformed or refused exchange that tested no
	// password (authenticator.refused).
	AuthProtocol
	NumAuthReasons
)

var authReasonNames = [NumAuthReasons]string{"credentials", "locked", "token", "storage", "protocol"}

func (r AuthReason) String() string { return authReasonNames[r] }

// authReasonOf classes the authenticator's free-text reason of a counted
// failure (authenticator.failed).
func authReasonOf(reason string) AuthReason {
	switch {
	case strings.HasPrefix(reason, "account locked"):
		return AuthLocked
	case strings.HasPrefix(reason, "token:"):
		return AuthToken
	case strings.HasPrefix(reason, "storage:"):
		return AuthStorage
	}
	return AuthCredentials
}

// A DropReason says which queue refused a stanza.
type DropReason uint8

const (
	// DropSessionQueue: a client's queue was full (the session is dropped
	// too, Metrics.SessionDropped).
	DropSessionQueue DropReason = iota
	// DropS2SQueue: the queue of an outgoing server-to-server stream was
	// full; the stanza bounced to its sender.
	DropS2SQueue
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{"session_queue", "s2s_queue"}

func (r DropReason) String() string { return dropReasonNames[r] }

// Stats are counts the server keeps, read at once for monitoring.
type Stats struct {
	// Sessions are the bound client sessions by transport, hibernated
	// ones (XEP-0198) included, by the transport they last had.
	TCP, DirectTLS, WebSocket, BOSH int
	// Hibernated sessions wait for their client to resume them.
	Hibernated int
	// S2SIn are the streams other servers opened to this one; S2SOut the
	// streams this one opened (or is opening) to them.
	S2SIn, S2SOut int
}

// Stats walks the sessions and streams: it is meant for a monitoring
// scrape every few seconds, not for the stanza path.
func (s *Server) Stats() Stats {
	s.init()
	var st Stats
	s.router.each(func(sess *Session) {
		c := sess.c()
		switch {
		case c == nil:
		case c.mode == plainTCP:
			st.TCP++
		case c.mode == directTLS:
			st.DirectTLS++
		case c.noSM: // BOSH is the web transport without stream management
			st.BOSH++
		default:
			st.WebSocket++
		}
	})
	st.Hibernated = int(s.hibernating.Load())
	st.S2SIn = int(s.s2sInStreams.Load())
	s.s2sMu.Lock()
	st.S2SOut = len(s.outgoingConns)
	s.s2sMu.Unlock()
	return st
}
