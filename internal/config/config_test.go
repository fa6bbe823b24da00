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
