package config

import (
	"io"
	"strings"
	"testing"
)

func TestTLSSettings(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		args      string
		http      string // HTTPSocket after parsing
		wantError string
	}{
		{args: "", http: "127.0.0.1:8000"},
		{args: "--https-socket :8443 --certfile c.pem", http: ""},
		{args: "--https-socket :8443 --tls-self-signed --http-socket :8000", http: ":8000"},
		{args: "--https-socket :8443 --certfile c.pem --keyfile k.pem --passphrase x --h2c --http-socket :80", http: ":80"},
		{args: "--certfile c.pem", wantError: "--certfile needs --https-socket"},
		{args: "--tls-self-signed", wantError: "--tls-self-signed needs --https-socket"},
		{args: "--https-socket :8443", wantError: "--https-socket needs --certfile"},
		{args: "--https-socket :8443 --tls-self-signed --certfile c.pem", wantError: "leave out --certfile"},
		{args: "--https-socket :8443 --tls-self-signed --h2c", wantError: "--h2c needs --http-socket"},
		{args: "--http-socket=", wantError: "must not be empty"},
	} {
		args := append([]string{"--module", "app"}, strings.Fields(tc.args)...)
		c, err := Load(args, noEnv, io.Discard)
		if tc.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("%s: err = %v, want one saying %q", tc.args, err, tc.wantError)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.args, err)
			continue
		}
		if c.HTTPSocket != tc.http {
			t.Errorf("%s: HTTPSocket %q, want %q", tc.args, c.HTTPSocket, tc.http)
		}
		// Worker processes get the resolved settings back as flags.
		w, err := Load(c.Args(), noEnv, io.Discard)
		if err != nil {
			t.Errorf("%s: worker flags %v: %v", tc.args, c.Args(), err)
		} else if w.HTTPSocket != c.HTTPSocket || w.HTTPSSocket != c.HTTPSSocket || w.H2C != c.H2C {
			t.Errorf("%s: worker sees %q %q %v", tc.args, w.HTTPSocket, w.HTTPSSocket, w.H2C)
		}
	}
}
