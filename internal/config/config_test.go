package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func load(t *testing.T, yaml string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xmppd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

// TestContact: contact addresses (XEP-0157) reach the disco module as
// configured, and one that is not an absolute URI is an error naming its
// key.
func TestContact(t *testing.T) {
	c, err := load(t, "contact:\n  abuse: [\"mailto:abuse@example.com\", \"xmpp:abuse@example.com\"]\n  support: [\"https://example.com/help\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	a := c.Contact.Addresses()
	if !slices.Equal(a.Abuse, []string{"mailto:abuse@example.com", "xmpp:abuse@example.com"}) ||
		!slices.Equal(a.Support, []string{"https://example.com/help"}) || len(a.Admin) != 0 {
		t.Fatalf("addresses %+v", a)
	}
	if Default().Contact.Addresses().Empty() == false {
		t.Fatal("the default configuration publishes contact addresses")
	}
	_, err = load(t, "contact:\n  security: [\"security@example.com\"]\n")
	if err == nil || !strings.Contains(err.Error(), "contact.security") {
		t.Fatalf("an address without a scheme: %v", err)
	}
}

// TestDialbackSecret: the key comes from the file without its line break
// (as `openssl rand -hex 32 > file` writes it), or from the option; both,
// an empty file or a missing one are errors, and neither means a random
// key (nil).
func TestDialbackSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dialback")
	if err := os.WriteFile(file, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		yaml, want, err string
	}{
		{yaml: "s2s:\n  dialback_secret_file: " + file + "\n", want: "0123456789abcdef"},
		{yaml: "s2s:\n  dialback_secret: inline\n", want: "inline"},
		{yaml: "{}\n", want: ""},
		{yaml: "s2s:\n  dialback_secret_file: " + empty + "\n", err: "is empty"},
		{yaml: "s2s:\n  dialback_secret_file: " + filepath.Join(dir, "none") + "\n", err: "no such file"},
	} {
		c, err := load(t, tc.yaml)
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		got, err := c.DialbackSecret()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q, %v; want an error with %q", tc.yaml, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.yaml, got, err, tc.want)
		}
	}
	if _, err := load(t, "s2s:\n  dialback_secret: inline\n  dialback_secret_file: "+file+"\n"); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("both set: %v, want an error", err)
	}
}
