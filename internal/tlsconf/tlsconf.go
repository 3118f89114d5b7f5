// Package tlsconf is wsgo's TLS set-up: loading the certificate and key
// from PEM files (separate, or combined in one file, with the key possibly
// encrypted under a passphrase), generating the throw-away certificate of
// --tls-self-signed, and the server's tls.Config with its defaults.
//
// It reads files and builds configurations; it does not listen or serve.
// The supervisor calls Prepare once at start, which checks the files (so
// that a mistake is reported before any worker starts) or generates the
// self-signed certificate and hands it to the workers; each worker calls
// ServerConfig, so that a reload (SIGHUP), which starts new workers, reads
// the files again.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// Settings are the command line's TLS flags.
type Settings struct {
	// CertFile holds the certificate chain, leaf first, and the key too
	// when KeyFile is empty.
	CertFile string
	KeyFile  string
	// Passphrase decrypts an encrypted key.
	Passphrase string
	// SelfSigned serves a certificate generated at start instead of files.
	SelfSigned bool
	// Addr is the --https-socket address, whose host the self-signed
	// certificate names besides localhost.
	Addr string
}

// selfSignedEnv carries the self-signed certificate and key (PEM) from the
// supervisor to its workers, so that every worker process, and every
// reload, serves the same one.
const selfSignedEnv = "WSGO_SELF_SIGNED_PEM"

// selfSignedLifetime is how long a generated certificate is valid: a
// development server is restarted well before.
const selfSignedLifetime = 30 * 24 * time.Hour

// Prepare runs in the supervisor, before any worker starts. It checks that
// the certificate and key load, or, for SelfSigned, generates the
// certificate and passes it to the workers through the environment. It
// returns what to log about the certificate: its names, expiry and
// fingerprint.
func Prepare(s Settings) ([]any, error) {
	if s.SelfSigned {
		pemBytes, err := generate(hostsFor(s.Addr), time.Now())
		if err != nil {
			return nil, fmt.Errorf("--tls-self-signed: %w", err)
		}
		if err := os.Setenv(selfSignedEnv, string(pemBytes)); err != nil {
			return nil, err
		}
	}
	cert, err := load(s)
	if err != nil {
		return nil, err
	}
	return describe(cert.Leaf), nil
}

// ServerConfig loads the certificate (from the files, or the one the
// supervisor generated) and returns the HTTPS server's configuration:
// TLS 1.2 or later, only forward-secret AEAD cipher suites under TLS 1.2
// (TLS 1.3's are all of that kind), and HTTP/2 offered by ALPN before
// HTTP/1.1. It must run before Python starts, so that the self-signed key
// leaves the environment before the app can see it.
func ServerConfig(s Settings) (*tls.Config, error) {
	cert, err := load(s)
	os.Unsetenv(selfSignedEnv)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}, nil
}

// load reads the certificate and key that s names.
func load(s Settings) (tls.Certificate, error) {
	if s.SelfSigned {
		pemBytes := os.Getenv(selfSignedEnv)
		if pemBytes == "" {
			return tls.Certificate{}, errors.New("--tls-self-signed: no certificate from the supervisor")
		}
		return keyPair([]byte(pemBytes), nil, "")
	}
	certPEM, err := os.ReadFile(s.CertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--certfile: %w", err)
	}
	var keyPEM []byte
	if s.KeyFile != "" {
		if keyPEM, err = os.ReadFile(s.KeyFile); err != nil {
			return tls.Certificate{}, fmt.Errorf("--keyfile: %w", err)
		}
	}
	cert, err := keyPair(certPEM, keyPEM, s.Passphrase)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--certfile %s: %w", s.CertFile, err)
	}
	return cert, nil
}

// keyPair builds the certificate from the PEM blocks of certPEM and the
// private key found in keyPEM, or in certPEM when keyPEM is nil, decrypting
// it with passphrase if it is encrypted.
func keyPair(certPEM, keyPEM []byte, passphrase string) (tls.Certificate, error) {
	var certs []byte
	var key *pem.Block
	scan := func(data []byte, takeCerts bool) {
		for {
			var b *pem.Block
			if b, data = pem.Decode(data); b == nil {
				return
			}
			switch {
			case b.Type == "CERTIFICATE":
				if takeCerts {
					certs = append(certs, pem.EncodeToMemory(b)...)
				}
			case strings.HasSuffix(b.Type, "PRIVATE KEY") && key == nil:
				key = b
			}
		}
	}
	scan(certPEM, true)
	if keyPEM != nil {
		key = nil
		scan(keyPEM, false)
	}
	if certs == nil {
		return tls.Certificate{}, errors.New("no CERTIFICATE in PEM form")
	}
	if key == nil {
		return tls.Certificate{}, errors.New("no PRIVATE KEY in PEM form (give --keyfile, or put the key in --certfile)")
	}
	key, err := decryptKey(key, passphrase)
	if err != nil {
		return tls.Certificate{}, err
	}
	// X509KeyPair parses the key and checks that it is the certificate's.
	return tls.X509KeyPair(certs, pem.EncodeToMemory(key))
}

// decryptKey returns b decrypted with passphrase when it is encrypted:
// PKCS#8 "ENCRYPTED PRIVATE KEY" (what OpenSSL 1.1 and 3 write), or a
// legacy OpenSSL key with a "Proc-Type: 4,ENCRYPTED" header.
func decryptKey(b *pem.Block, passphrase string) (*pem.Block, error) {
	//lint:ignore SA1019 legacy PEM encryption is insecure, but reading such a key is all we do
	legacy := x509.IsEncryptedPEMBlock(b)
	if b.Type != "ENCRYPTED PRIVATE KEY" && !legacy {
		if passphrase != "" {
			return nil, errors.New("--passphrase given but the key is not encrypted")
		}
		return b, nil
	}
	if passphrase == "" {
		return nil, errors.New("the private key is encrypted: give its --passphrase")
	}
	if legacy {
		//lint:ignore SA1019 see above
		der, err := x509.DecryptPEMBlock(b, []byte(passphrase))
		if err != nil {
			return nil, fmt.Errorf("cannot decrypt the private key (wrong --passphrase?): %w", err)
		}
		return &pem.Block{Type: b.Type, Bytes: der}, nil
	}
	der, err := decryptPKCS8(b.Bytes, []byte(passphrase))
	if err != nil {
		return nil, err
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}, nil
}

// hostsFor lists the names a self-signed certificate for addr covers:
// localhost and the loopback addresses, and addr's host when it names one.
func hostsFor(addr string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return hosts
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return hosts
	}
	for _, h := range hosts {
		if h == host {
			return hosts
		}
	}
	return append(hosts, host)
}

// generate makes a self-signed ECDSA P-256 certificate for hosts, valid
// from an hour before now, and returns it and its key in PEM form.
func generate(hosts []string, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "wsgo self-signed", Organization: []string{"wsgo development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), nil
}

// describe gives the log's view of a certificate.
func describe(leaf *x509.Certificate) []any {
	if leaf == nil {
		return nil
	}
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
	}
	sum := sha256.Sum256(leaf.Raw)
	return []any{"names", strings.Join(names, ","), "expires", leaf.NotAfter.UTC().Format(time.DateOnly),
		"sha256", hex.EncodeToString(sum[:])}
}
