package xmpp

import (
	"maps"
	"slices"
	"time"
)

// Settings are the limits and federation lists that may change while the
// server runs: Reconfigure swaps them at once for all readers (xmppd calls
// it on SIGHUP). Each setting is read where it is applied, so a change
// reaches:
//
//   - every accept, stanza or attempt from then on: the connection rate and
//     unauthenticated connections per address, the outbound queue bounds of
//     every session (QueueSize, QueueBytes, SMMaxUnacked), the sessions per
//     account at the next bind, the authentication failure limits, the
//     federation allow and deny lists (checked for each stanza either way,
//     so a stream from a domain denied since it was set up ends at its next
//     one), and S2SRoutes at the next outgoing stream;
//   - new connections only: MaxStanzaSize, ReadRate and ReadBurst (a
//     connection keeps the guard it was given), NegotiationTimeout,
//     TLSHandshakeTimeout, SMResumeTimeout (fixed when a session enables
//     stream management), and S2SIdleTimeout, S2SConnectTimeout and
//     S2SQueueSize (fixed when an outgoing stream starts).
//
// The fields mean what Server's fields of the same names mean, with the
// same defaults for zero values. Server's fields are read once, when
// serving starts; after that only Reconfigure changes the settings.
type Settings struct {
	MaxStanzaSize          int
	ReadRate, ReadBurst    int
	MaxUnauthPerIP         int
	ConnRatePerIP          float64
	ConnBurstPerIP         int
	TLSHandshakeTimeout    time.Duration
	NegotiationTimeout     time.Duration
	MaxSessionsPerAccount  int
	SMResumeTimeout        time.Duration
	SMMaxUnacked           int
	QueueSize, QueueBytes  int
	AuthFailureDelay       time.Duration
	MaxAuthFailures        int
	MaxAccountAuthFailures int
	AuthFailureWindow      time.Duration

	S2SRoutes                         map[string]string
	S2SAllow, S2SDeny                 []string
	S2SIdleTimeout, S2SConnectTimeout time.Duration
	S2SQueueSize                      int
}

// withDefaults is st with the defaults in place of zero values, and its
// own copies of the lists, which the caller may go on changing.
func (st Settings) withDefaults() Settings {
	st.MaxStanzaSize = orDefault(st.MaxStanzaSize, DefaultMaxStanzaSize)
	st.MaxUnauthPerIP = orDefault(st.MaxUnauthPerIP, DefaultMaxUnauthPerIP)
	st.ConnRatePerIP = orDefault(st.ConnRatePerIP, DefaultConnRatePerIP)
	st.ConnBurstPerIP = orDefault(st.ConnBurstPerIP, DefaultConnBurstPerIP)
	st.TLSHandshakeTimeout = positive(st.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	st.NegotiationTimeout = positive(st.NegotiationTimeout, DefaultNegotiationTimeout)
	st.MaxSessionsPerAccount = orDefault(st.MaxSessionsPerAccount, DefaultMaxSessionsPerAccount)
	st.SMResumeTimeout = orDefault(st.SMResumeTimeout, DefaultSMResumeTimeout)
	st.SMMaxUnacked = positive(st.SMMaxUnacked, DefaultSMMaxUnacked)
	st.QueueSize = positive(st.QueueSize, DefaultQueueSize)
	st.QueueBytes = positive(st.QueueBytes, DefaultQueueBytes)
	st.AuthFailureDelay = orDefault(st.AuthFailureDelay, DefaultAuthFailureDelay)
	st.MaxAuthFailures = orDefault(st.MaxAuthFailures, DefaultMaxAuthFailures)
	st.MaxAccountAuthFailures = orDefault(st.MaxAccountAuthFailures, DefaultMaxAccountAuthFailures)
	st.AuthFailureWindow = orDefault(st.AuthFailureWindow, DefaultAuthFailureWindow)
	st.S2SIdleTimeout = positive(st.S2SIdleTimeout, DefaultS2SIdleTimeout)
	st.S2SConnectTimeout = positive(st.S2SConnectTimeout, DefaultS2SConnectTimeout)
	st.S2SQueueSize = positive(st.S2SQueueSize, DefaultS2SQueueSize)
	st.S2SRoutes = maps.Clone(st.S2SRoutes)
	st.S2SAllow = slices.Clone(st.S2SAllow)
	st.S2SDeny = slices.Clone(st.S2SDeny)
	return st
}

// initSettings takes the settings from the server's fields, with their
// defaults, and writes the defaults back to the fields, where modules read
// them when they register; part of init.
func (s *Server) initSettings() {
	st := Settings{
		MaxStanzaSize:          s.MaxStanzaSize,
		ReadRate:               s.ReadRate,
		ReadBurst:              s.ReadBurst,
		MaxUnauthPerIP:         s.MaxUnauthPerIP,
		ConnRatePerIP:          s.ConnRatePerIP,
		ConnBurstPerIP:         s.ConnBurstPerIP,
		TLSHandshakeTimeout:    s.TLSHandshakeTimeout,
		NegotiationTimeout:     s.NegotiationTimeout,
		MaxSessionsPerAccount:  s.MaxSessionsPerAccount,
		SMResumeTimeout:        s.SMResumeTimeout,
		SMMaxUnacked:           s.SMMaxUnacked,
		QueueSize:              s.QueueSize,
		QueueBytes:             s.QueueBytes,
		AuthFailureDelay:       s.AuthFailureDelay,
		MaxAuthFailures:        s.MaxAuthFailures,
		MaxAccountAuthFailures: s.MaxAccountAuthFailures,
		AuthFailureWindow:      s.AuthFailureWindow,
		S2SRoutes:              s.S2SRoutes,
		S2SAllow:               s.S2SAllow,
		S2SDeny:                s.S2SDeny,
		S2SIdleTimeout:         s.S2SIdleTimeout,
		S2SConnectTimeout:      s.S2SConnectTimeout,
		S2SQueueSize:           s.S2SQueueSize,
	}.withDefaults()
	s.settings.Store(&st)
	s.MaxStanzaSize = st.MaxStanzaSize
	s.MaxUnauthPerIP = st.MaxUnauthPerIP
	s.ConnRatePerIP = st.ConnRatePerIP
	s.ConnBurstPerIP = st.ConnBurstPerIP
	s.TLSHandshakeTimeout = st.TLSHandshakeTimeout
	s.NegotiationTimeout = st.NegotiationTimeout
	s.MaxSessionsPerAccount = st.MaxSessionsPerAccount
	s.SMResumeTimeout = st.SMResumeTimeout
	s.SMMaxUnacked = st.SMMaxUnacked
	s.QueueSize = st.QueueSize
	s.QueueBytes = st.QueueBytes
	s.AuthFailureDelay = st.AuthFailureDelay
	s.MaxAuthFailures = st.MaxAuthFailures
	s.MaxAccountAuthFailures = st.MaxAccountAuthFailures
	s.AuthFailureWindow = st.AuthFailureWindow
	s.S2SIdleTimeout = st.S2SIdleTimeout
	s.S2SConnectTimeout = st.S2SConnectTimeout
	s.S2SQueueSize = st.S2SQueueSize
}

// Reconfigure replaces the settings, zero values selecting the defaults.
// It is safe to call at any time, from any goroutine; what it changes for
// connections already open is said at Settings.
func (s *Server) Reconfigure(st Settings) {
	s.init()
	st = st.withDefaults()
	s.settings.Store(&st)
}

// Settings returns the settings in force, defaults applied.
func (s *Server) Settings() Settings {
	return s.cur().withDefaults() // a copy the caller may change
}

// cur is the settings in force; readers take it once per decision, so that
// one decision sees one version. It must not be changed.
func (s *Server) cur() *Settings {
	if st := s.settings.Load(); st != nil {
		return st
	}
	s.init()
	return s.settings.Load()
}
