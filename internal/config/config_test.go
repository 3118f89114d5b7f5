package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		args    []string
		check   func(*Config) bool
		wantErr string
	}{
		{[]string{"--module", "app"}, func(c *Config) bool {
			return c.Module == "app" && c.HTTPSocket == "127.0.0.1:8000" && c.Workers == 16 && c.MaxBodySize == 0
		}, ""},
		{[]string{"--module=app:make", "--workers", "4", "--pythonpath", "a", "--pythonpath", "b"}, func(c *Config) bool {
			m, fn := c.ModuleAndCallable()
			return m == "app" && fn == "make" && c.Workers == 4 && strings.Join(c.PythonPath, ",") == "a,b"
		}, ""},
		{[]string{"--version"}, func(c *Config) bool { return c.Version }, ""},
		{[]string{}, nil, "--module is required"},
		{[]string{"--module", "app", "--workers", "0"}, nil, "--workers must be at least 1"},
		{[]string{"--module", "app", "--max-body-size", "-1"}, nil, "must not be negative"},
		{[]string{"--module", "app"}, func(c *Config) bool { return c.CronTimeout == 1800 }, ""},
		{[]string{"--module", "app", "--cron-timeout", "0"}, func(c *Config) bool { return c.CronTimeout == 0 }, ""},
		{[]string{"--module", "app", "--cron-timeout", "-1"}, nil, "--cron-timeout must not be negative"},
		{[]string{"--module", "app", "stray"}, nil, `unexpected argument "stray"`},
		{[]string{"--nope"}, nil, "flag provided but not defined: -nope"},
		{[]string{"--workers", "many"}, nil, `invalid value "many"`},
	}
	for _, tt := range tests {
		c, err := Parse(tt.args, &bytes.Buffer{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !tt.check(c) {
			t.Errorf("Parse(%q) = %+v, %v", tt.args, c, err)
		}
	}
}

func TestHelpListsEveryFlagWithDefault(t *testing.T) {
	var out bytes.Buffer
	if _, err := Parse([]string{"--help"}, &out); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help returned %v", err)
	}
	for _, want := range []string{"--module", "--http-socket", "(default: 127.0.0.1:8000)", "--workers",
		"(default: 16)", "--chdir", "--pythonpath", "--virtualenv", "--max-body-size", "--version", "--help"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output lacks %q:\n%s", want, out.String())
		}
	}
}
