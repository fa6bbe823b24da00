package xmpp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// SelfSignedCert makes a certificate for domain (and its subdomains), with
// its key, as PEM.
func SelfSignedCert(domain string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain},
		DNSNames:              []string{domain, "*." + domain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// LoadOrCreateCert loads certFile and keyFile, first writing a self-signed
// pair for domain there if neither exists. It reports whether it made one.
func LoadOrCreateCert(certFile, keyFile, domain string) (tls.Certificate, bool, error) {
	_, errC := os.Stat(certFile)
	_, errK := os.Stat(keyFile)
	created := false
	if errors.Is(errC, os.ErrNotExist) && errors.Is(errK, os.ErrNotExist) {
		c, k, err := SelfSignedCert(domain)
		if err != nil {
			return tls.Certificate{}, false, err
		}
		if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
			return tls.Certificate{}, false, err
		}
		if err := writeDurable(keyFile, k, 0o600); err != nil {
			return tls.Certificate{}, false, err
		}
		if err := writeDurable(certFile, c, 0o644); err != nil {
			return tls.Certificate{}, false, err
		}
		created = true
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	return cert, created, err
}

// writeDurable writes data to name so that after a crash, or a disk that
// fails before the page cache is written back, name is either absent or
// whole: through a temporary file that is synced and renamed, and the
// directory synced. A plain WriteFile left an empty cert.pem behind when
// the file system turned read-only moments later (TestDataDirReadOnly),
// and xmppd then refused to start.
func writeDurable(name string, data []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	dir, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// TLSConfig is the server-side TLS configuration xmppd uses: TLS 1.2 at
// least, Go's default cipher suites.
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
}
