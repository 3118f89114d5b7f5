package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTemp writes data to a file of the test's and returns its path.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeyPairForms(t *testing.T) {
	cert := fixture(t, "cert.pem")
	for _, tc := range []struct {
		name, key, passphrase, wantErr string
		combined                       bool
	}{
		{name: "separate files", key: "key.pem"},
		{name: "combined file", key: "key.pem", combined: true},
		{name: "PKCS#8 AES-256 (OpenSSL 3 default)", key: "key-pkcs8-aes256.pem", passphrase: "secret"},
		{name: "PKCS#8 AES-128, HMAC-SHA512", key: "key-pkcs8-aes128-sha512.pem", passphrase: "secret", combined: true},
		{name: "PKCS#8 DES-EDE3, HMAC-SHA1", key: "key-pkcs8-des3-sha1.pem", passphrase: "secret"},
		{name: "legacy Proc-Type encryption", key: "key-legacy-aes128.pem", passphrase: "secret", combined: true},
		{name: "wrong passphrase", key: "key-pkcs8-aes256.pem", passphrase: "wrong", wantErr: "wrong --passphrase"},
		{name: "wrong legacy passphrase", key: "key-legacy-aes128.pem", passphrase: "wrong", wantErr: "wrong --passphrase"},
		{name: "no passphrase", key: "key-pkcs8-aes256.pem", wantErr: "give its --passphrase"},
		{name: "passphrase for a plain key", key: "key.pem", passphrase: "secret", wantErr: "not encrypted"},
		{name: "PBES1", key: "key-pkcs8-v1.pem", passphrase: "secret", wantErr: "only PBES2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := fixture(t, tc.key)
			s := Settings{Passphrase: tc.passphrase}
			if tc.combined {
				s.CertFile = writeTemp(t, "combined.pem", append(append([]byte{}, key...), cert...))
			} else {
				s.CertFile = writeTemp(t, "cert.pem", cert)
				s.KeyFile = writeTemp(t, "key.pem", key)
			}
			c, err := load(s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Leaf == nil || c.Leaf.Subject.CommonName != "wsgo-test" {
				t.Fatalf("leaf %v, want CN wsgo-test", c.Leaf)
			}
		})
	}
}

func TestKeyPairErrors(t *testing.T) {
	other, err := generate([]string{"localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"no certificate", fixture(t, "key.pem"), nil, "no CERTIFICATE"},
		{"no key", fixture(t, "cert.pem"), nil, "no PRIVATE KEY"},
		{"key of another certificate", fixture(t, "cert.pem"), other, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{CertFile: writeTemp(t, "cert.pem", tc.cert)}
			if tc.key != nil {
				s.KeyFile = writeTemp(t, "key.pem", tc.key)
			}
			if _, err := load(s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
	if _, err := load(Settings{CertFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil ||
		!strings.HasPrefix(err.Error(), "--certfile") {
		t.Fatalf("missing file: err = %v, want one naming --certfile", err)
	}
}

func TestSelfSigned(t *testing.T) {
	t.Setenv(selfSignedEnv, "")
	s := Settings{SelfSigned: true, Addr: "192.0.2.7:8443"}
	desc, err := Prepare(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(anyStrings(desc), " "), "localhost,127.0.0.1,::1,192.0.2.7") {
		t.Errorf("description %v lacks the names", desc)
	}
	cfg, err := ServerConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := os.LookupEnv(selfSignedEnv); ok {
		t.Errorf("%s still set after ServerConfig (%d bytes)", selfSignedEnv, len(v))
	}
	leaf := cfg.Certificates[0].Leaf
	if err := leaf.VerifyHostname("192.0.2.7"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || time.Until(leaf.NotAfter) < 29*24*time.Hour {
		t.Errorf("usage %v, expiry %v", leaf.ExtKeyUsage, leaf.NotAfter)
	}
	if cfg.MinVersion != tls.VersionTLS12 || !slices.Equal(cfg.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("MinVersion %x, NextProtos %v", cfg.MinVersion, cfg.NextProtos)
	}
	for _, id := range cfg.CipherSuites {
		for _, bad := range tls.InsecureCipherSuites() {
			if bad.ID == id {
				t.Errorf("insecure suite %s configured", bad.Name)
			}
		}
		if name := tls.CipherSuiteName(id); !strings.Contains(name, "ECDHE") ||
			!(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("suite %s is not forward-secret AEAD", name)
		}
	}
}

func TestHostsFor(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8443":   "localhost 127.0.0.1 ::1",
		"0.0.0.0:443":      "localhost 127.0.0.1 ::1",
		"[::]:443":         "localhost 127.0.0.1 ::1",
		":443":             "localhost 127.0.0.1 ::1",
		"dev.example:8443": "localhost 127.0.0.1 ::1 dev.example",
	} {
		if got := strings.Join(hostsFor(addr), " "); got != want {
			t.Errorf("hostsFor(%q) = %q, want %q", addr, got, want)
		}
	}
}

func anyStrings(a []any) []string {
	var out []string
	for _, v := range a {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
