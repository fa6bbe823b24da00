package pep

import (
	"crypto/sha1"
	"testing"

	"github.com/xmppd/xmppd/xmpp"
)

// The examples of XEP-0115 §5.2 and §5.3, with the hashes the XEP gives.
func TestVerificationExamples(t *testing.T) {
	for _, c := range []struct{ name, info, want string }{
		{"simple", `<query xmlns="http://jabber.org/protocol/disco#info">` +
			`<identity category="client" name="Exodus 0.9.1" type="pc"/>` +
			`<feature var="http://jabber.org/protocol/caps"/>` +
			`<feature var="http://jabber.org/protocol/disco#info"/>` +
			`<feature var="http://jabber.org/protocol/disco#items"/>` +
			`<feature var="http://jabber.org/protocol/muc"/></query>`,
			"QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"complex", `<query xmlns="http://jabber.org/protocol/disco#info">` +
			`<identity xml:lang="en" category="client" name="Psi 0.11" type="pc"/>` +
			`<identity xml:lang="el" category="client" name="Ψ 0.11" type="pc"/>` +
			`<feature var="http://jabber.org/protocol/caps"/>` +
			`<feature var="http://jabber.org/protocol/disco#info"/>` +
			`<feature var="http://jabber.org/protocol/disco#items"/>` +
			`<feature var="http://jabber.org/protocol/muc"/>` +
			`<x xmlns="jabber:x:data" type="result">` +
			`<field var="FORM_TYPE" type="hidden"><value>urn:xmpp:dataforms:softwareinfo</value></field>` +
			`<field var="ip_version"><value>ipv4</value><value>ipv6</value></field>` +
			`<field var="os"><value>Mac</value></field>` +
			`<field var="os_version"><value>10.5.1</value></field>` +
			`<field var="software"><value>Psi</value></field>` +
			`<field var="software_version"><value>0.11</value></field></x></query>`,
			"q07IKJEyjvHSyhy//CH0CxmKi8w="},
	} {
		el, err := xmpp.ParseElement([]byte(c.info))
		if err != nil {
			t.Fatal(err)
		}
		if got := verification(el, sha1.New); got != c.want {
			t.Errorf("%s: verification = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestConfigMatches(t *testing.T) {
	c := defaults()
	c.maxItems = 0
	for _, tc := range []struct {
		field, v string
		want     bool
	}{
		{fieldAccess, "presence", true},
		{fieldAccess, "open", false},
		{fieldMaxItems, "max", true},
		{fieldMaxItems, "256", true}, // the service's "max"
		{fieldMaxItems, "1", false},
		{fieldPersist, "1", true},
		{fieldPersist, "false", false},
		{"pubsub#unknown", "x", false},
		{fieldSendLast, "never", false},
	} {
		if got := c.matches(tc.field, tc.v, 256); got != tc.want {
			t.Errorf("matches(%s, %s) = %v, want %v", tc.field, tc.v, got, tc.want)
		}
	}
}
