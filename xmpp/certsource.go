package xmpp

import (
	"crypto/tls"
	"sync/atomic"
)

// A CertSource holds the server's certificate so that it can be replaced
// while the server runs (a renewed certificate, on SIGHUP): connections
// whose handshake starts after Set get the new one; those set up before
// keep the one they negotiated.
type CertSource struct {
	cert atomic.Pointer[tls.Certificate]
}

// NewCertSource returns a source serving cert.
func NewCertSource(cert tls.Certificate) *CertSource {
	c := new(CertSource)
	c.Set(cert)
	return c
}

// Set replaces the certificate for the handshakes that follow.
func (c *CertSource) Set(cert tls.Certificate) { c.cert.Store(&cert) }

// Certificate is the certificate served now.
func (c *CertSource) Certificate() *tls.Certificate { return c.cert.Load() }

// TLSConfig is TLSConfig's configuration with the certificate taken from c
// at each handshake. Certificates stays empty: crypto/tls would serve its
// first entry to clients that send no server name, without asking c.
func (c *CertSource) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cert.Load(), nil
		},
		MinVersion: tls.VersionTLS12,
	}
}

// clientCertificate is the certificate offered when another server asks
// for one on our outgoing stream, for SASL EXTERNAL (XEP-0178): the one
// served to clients, taken at each handshake so that a replaced one is used
// from then on.
func (s *Server) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	tc := s.TLSConfig
	if tc.GetCertificate != nil {
		if c, err := tc.GetCertificate(&tls.ClientHelloInfo{ServerName: s.Domain}); err == nil && c != nil {
			return c, nil
		}
	}
	if len(tc.Certificates) > 0 {
		return &tc.Certificates[0], nil
	}
	return new(tls.Certificate), nil // none: the handshake goes on without
}
