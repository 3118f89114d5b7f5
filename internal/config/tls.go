package config

import (
	"errors"
	"flag"
)

// tlsFlags binds the HTTPS flags to c.
func tlsFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.HTTPSSocket, "https-socket", "", "HOST:PORT to serve HTTPS on, HTTP/2 or HTTP/1.1 (needs --certfile or --tls-self-signed; --http-socket is then served only when given too)")
	fs.StringVar(&c.CertFile, "certfile", "", "PEM file of the HTTPS certificate chain, leaf first, and of its private key unless --keyfile is given")
	fs.StringVar(&c.KeyFile, "keyfile", "", "PEM file of the HTTPS certificate's private key")
	fs.StringVar(&c.Passphrase, "passphrase", "", "passphrase of an encrypted private key")
	fs.BoolVar(&c.TLSSelfSigned, "tls-self-signed", false, "development: serve HTTPS with a throw-away self-signed certificate made at start")
	fs.BoolVar(&c.H2C, "h2c", false, "serve cleartext HTTP/2 on --http-socket too (prior knowledge, and Upgrade: h2c)")
}

// checkTLS checks the HTTPS settings together. When --https-socket is
// given and --http-socket is not, the latter's default is not served.
func (c *Config) checkTLS() error {
	given := func(name string) bool { _, ok := c.origins[name]; return ok }
	if c.HTTPSSocket == "" {
		for _, name := range []string{"certfile", "keyfile", "passphrase", "tls-self-signed"} {
			if given(name) && c.flags.Lookup(name).Value.String() != c.flags.Lookup(name).DefValue {
				return errors.New(c.origin(name) + " needs --https-socket")
			}
		}
		if c.HTTPSocket == "" {
			return errors.New(c.origin("http-socket") + " must not be empty without --https-socket")
		}
		return nil
	}
	switch {
	case c.TLSSelfSigned && (c.CertFile != "" || c.KeyFile != "" || c.Passphrase != ""):
		return errors.New(c.origin("tls-self-signed") + " makes its own certificate: leave out --certfile, --keyfile and --passphrase")
	case !c.TLSSelfSigned && c.CertFile == "":
		return errors.New(c.origin("https-socket") + " needs --certfile (or --tls-self-signed, for development)")
	case c.H2C && !given("http-socket"):
		return errors.New(c.origin("h2c") + " needs --http-socket, where it serves cleartext HTTP/2")
	}
	if !given("http-socket") {
		c.HTTPSocket = ""
	}
	return nil
}
