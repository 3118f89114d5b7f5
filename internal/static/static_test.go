package static

import "testing"

func TestHasContentHash(t *testing.T) {
	for name, want := range map[string]bool{
		"app.3f2a9c1e.js":         true,
		"main.3f2a9c1e1234.css":   true,
		"main-3f2a9c1e.css":       true,
		"3f2a9c1e.chunk.js":       true,
		"app.js":                  false,
		"jquery.min.js":           false,
		"deadbeef.js":             false, // a word, not a hash: no digit
		"report.20231010.pdf":     false, // a date: no letter
		"app.3f2a9c1.js":          false, // too short
		"font.3F2A9C1E.woff2":     false, // upper case is not how bundlers write it
		"archive.tar.3f2a9c1e":    false, // the hash is the extension
		"icon_3f2a9c1e5d6b7a.png": true,
	} {
		if got := hasContentHash(name); got != want {
			t.Errorf("hasContentHash(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestAccepts(t *testing.T) {
	for _, tc := range []struct {
		header, token string
		want          bool
	}{
		{"gzip, deflate, br", "br", true},
		{"gzip, deflate, br", "gzip", true},
		{"gzip", "br", false},
		{"br;q=0, gzip", "br", false},
		{"BR;Q=0.5", "br", true},
		{"gzip; q=0.0", "gzip", false},
		{"*", "br", true},
		{"*;q=0", "gzip", false},
		{"br;q=0, *", "br", false},
		{"identity", "gzip", false},
	} {
		if got := accepts(tc.header, tc.token); got != tc.want {
			t.Errorf("accepts(%q, %q) = %v, want %v", tc.header, tc.token, got, tc.want)
		}
	}
}

func TestLocalName(t *testing.T) {
	for name, want := range map[string]bool{
		"a.css":                    true,
		"sub/a.css":                true,
		"":                         false,
		"../a":                     false,
		"sub/../../a":              false,
		".env":                     false,
		"sub/.git/x":               false,
		"a//b":                     false,
		"sub/":                     false,
		"a\\..\\b":                 false,
		"a\x00.css":                false,
		string(make([]byte, 5000)): false,
	} {
		if _, got := localName(name); got != want {
			t.Errorf("localName(%.20q) = %v, want %v", name, got, want)
		}
	}
}
