package disco_test

import (
	"slices"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/disco"
	"github.com/xmppd/xmppd/modules/upload"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// contacts are the addresses the tests publish; Sales and Security are
// left out, so their fields must be too.
var contacts = disco.Addresses{
	Abuse:    []string{"mailto:abuse@localhost", "xmpp:abuse@localhost"},
	Admin:    []string{"xmpp:admin@localhost"},
	Feedback: []string{"https://localhost/feedback"},
	Support:  []string{"https://localhost/support", "mailto:support@localhost"},
}

// startAll runs a server with every module of a default server, the chat
// room and upload services included, and the test's contact addresses.
func startAll(t *testing.T, backend string, c disco.Addresses) *testenv.Server {
	return testenv.Start(t, backend, func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, MUC: true,
			Upload: &upload.Service{Dir: t.TempDir()}, Contacts: c})
	})
}

// info is what a disco#info result lists.
type info struct {
	identities []xmpp.Identity
	features   []string
	forms      []*form.Form
}

func discoInfo(t *testing.T, c *testenv.Client, to string) info {
	t.Helper()
	res := c.IQ(t, "get", to, `<query xmlns="`+disco.NSInfo+`"/>`)
	q := res.Child(disco.NSInfo, "query")
	if res.Get("type") != "result" || q == nil {
		t.Fatalf("disco#info of %q: %s", to, res)
	}
	var in info
	for _, el := range q.Elements() {
		switch {
		case el.Space == disco.NSInfo && el.Local == "identity":
			in.identities = append(in.identities, xmpp.Identity{Category: el.Get("category"), Type: el.Get("type"), Name: el.Get("name")})
		case el.Space == disco.NSInfo && el.Local == "feature":
			in.features = append(in.features, el.Get("var"))
		case el.Space == form.NS && el.Local == "x":
			fm, err := form.Parse(el)
			if err != nil {
				t.Fatal(err)
			}
			in.forms = append(in.forms, fm)
		default:
			t.Fatalf("disco#info of %q has %s", to, el)
		}
	}
	slices.Sort(in.features)
	return in
}

// TestServedInfo lists exactly what the server's and an account's
// disco#info say with every module on (XEP-0030), so that a module that
// adds a feature where clients do not look for it, or drops one, fails
// here: what the server offers to its clients on the server's JID
// (blocking, XEP-0191 §2; carbons, XEP-0280 §3; offline storage, XEP-0160;
// vcard-temp, XEP-0054 §2; private storage; registration, XEP-0077 §8;
// version, time, last activity, ping), what an account holds on its bare
// JID (the archive, XEP-0313 §7, with its stanza ids, XEP-0359; push,
// XEP-0357 §5), and the services among the server's items (the upload
// service, XEP-0363 §2; chat rooms, XEP-0045 §6.1) with their features on
// their own JIDs, not the server's.
func TestServedInfo(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := startAll(t, backend, contacts)
		a := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
		s.AddUser(t, "bob", "pw")

		server := discoInfo(t, a, testenv.Domain)
		wantIDs := []xmpp.Identity{{Category: "server", Type: "im", Name: "xmppd"}}
		if !slices.Equal(server.identities, wantIDs) {
			t.Errorf("server's identities %v, want %v", server.identities, wantIDs)
		}
		wantServer := []string{
			"http://jabber.org/protocol/disco#info",
			"http://jabber.org/protocol/disco#items",
			"jabber:iq:last",
			"jabber:iq:private",
			"jabber:iq:register",
			"jabber:iq:version",
			"msgoffline",
			"urn:xmpp:blocking",
			"urn:xmpp:carbons:2",
			"urn:xmpp:carbons:rules:0",
			"urn:xmpp:ping",
			"urn:xmpp:time",
			"vcard-temp",
		}
		if !slices.Equal(server.features, wantServer) {
			t.Errorf("server's features\n %q\nwant\n %q", server.features, wantServer)
		}

		wantAccount := []string{
			"http://jabber.org/protocol/disco#info",
			"http://jabber.org/protocol/disco#items",
			"http://jabber.org/protocol/pubsub",
			"http://jabber.org/protocol/pubsub#access-open",
			"http://jabber.org/protocol/pubsub#access-presence",
			"http://jabber.org/protocol/pubsub#access-whitelist",
			"http://jabber.org/protocol/pubsub#auto-create",
			"http://jabber.org/protocol/pubsub#auto-subscribe",
			"http://jabber.org/protocol/pubsub#config-node",
			"http://jabber.org/protocol/pubsub#create-and-configure",
			"http://jabber.org/protocol/pubsub#create-nodes",
			"http://jabber.org/protocol/pubsub#delete-items",
			"http://jabber.org/protocol/pubsub#delete-nodes",
			"http://jabber.org/protocol/pubsub#filtered-notifications",
			"http://jabber.org/protocol/pubsub#item-ids",
			"http://jabber.org/protocol/pubsub#last-published",
			"http://jabber.org/protocol/pubsub#modify-affiliations",
			"http://jabber.org/protocol/pubsub#persistent-items",
			"http://jabber.org/protocol/pubsub#presence-notifications",
			"http://jabber.org/protocol/pubsub#publish",
			"http://jabber.org/protocol/pubsub#publish-options",
			"http://jabber.org/protocol/pubsub#purge-nodes",
			"http://jabber.org/protocol/pubsub#retract-items",
			"http://jabber.org/protocol/pubsub#retrieve-affiliations",
			"http://jabber.org/protocol/pubsub#retrieve-default",
			"http://jabber.org/protocol/pubsub#retrieve-items",
			"urn:xmpp:bookmarks:1#compat",
			"urn:xmpp:bookmarks:1#compat-pep",
			"urn:xmpp:carbons:2",
			"urn:xmpp:mam:2",
			"urn:xmpp:mam:2#extended",
			"urn:xmpp:pep-vcard-conversion:0",
			"urn:xmpp:ping",
			"urn:xmpp:push:0",
			"urn:xmpp:sid:0",
			"vcard-temp",
		}
		wantAccountIDs := []xmpp.Identity{{Category: "account", Type: "registered"}, {Category: "pubsub", Type: "pep"}}
		// The account's own, asked with and without 'to', and another's.
		for _, to := range []string{"", "alice@localhost", "bob@localhost"} {
			acc := discoInfo(t, a, to)
			if !slices.Equal(acc.identities, wantAccountIDs) {
				t.Errorf("account %q: identities %v, want %v", to, acc.identities, wantAccountIDs)
			}
			if !slices.Equal(acc.features, wantAccount) {
				t.Errorf("account %q: features\n %q\nwant\n %q", to, acc.features, wantAccount)
			}
			if len(acc.forms) != 0 {
				t.Errorf("account %q has forms: %v", to, acc.forms)
			}
		}

		// The server's items: the chat room and upload services, each
		// with its own identity and feature.
		res := a.IQ(t, "get", testenv.Domain, `<query xmlns="`+disco.NSItems+`"/>`)
		var items []string
		for _, it := range res.Child(disco.NSItems, "query").Elements() {
			items = append(items, it.Get("jid"))
		}
		if want := []string{"conference.localhost", "upload.localhost"}; !slices.Equal(items, want) {
			t.Fatalf("server's items %q, want %q", items, want)
		}
		up := discoInfo(t, a, "upload.localhost")
		if !slices.Contains(up.features, upload.NS) || !slices.Contains(up.identities, xmpp.Identity{Category: "store", Type: "file", Name: "HTTP File Upload"}) {
			t.Errorf("upload service's info: %+v", up)
		}
		muc := discoInfo(t, a, "conference.localhost")
		if !slices.Contains(muc.features, "http://jabber.org/protocol/muc") {
			t.Errorf("chat room service's features: %q", muc.features)
		}

		// An account that does not exist has no info (RFC 6121 §8.5.1).
		res = a.IQ(t, "get", "nobody@localhost", `<query xmlns="`+disco.NSInfo+`"/>`)
		if res.Get("type") != "error" || testenv.ErrorCondition(res) != xmpp.ServiceUnavailable {
			t.Errorf("disco#info of a missing account: %s", res)
		}
		// Nor has a node (XEP-0030 §3.1).
		res = a.IQ(t, "get", testenv.Domain, `<query xmlns="`+disco.NSInfo+`" node="x"/>`)
		if res.Get("type") != "error" || testenv.ErrorCondition(res) != xmpp.ItemNotFound {
			t.Errorf("disco#info of a node: %s", res)
		}
	})
}

// TestContactAddresses: the server's contact addresses (XEP-0157) are an
// extended information form (XEP-0128) in its disco#info, one field per
// role that has addresses, in the order configured; with none configured
// there is no form.
func TestContactAddresses(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := startAll(t, backend, contacts)
		a := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
		in := discoInfo(t, a, testenv.Domain)
		if len(in.forms) != 1 {
			t.Fatalf("%d forms in the server's disco#info, want 1", len(in.forms))
		}
		fm := in.forms[0]
		if err := fm.Check(); err != nil {
			t.Error(err)
		}
		if fm.Type != form.TypeResult || fm.FormType != disco.NSServerInfo {
			t.Fatalf("form of type %q, FORM_TYPE %q", fm.Type, fm.FormType)
		}
		want := map[string][]string{
			"abuse-addresses":    contacts.Abuse,
			"admin-addresses":    contacts.Admin,
			"feedback-addresses": contacts.Feedback,
			"support-addresses":  contacts.Support,
		}
		if len(fm.Fields) != len(want) {
			t.Errorf("fields %+v, want %d", fm.Fields, len(want))
		}
		for _, f := range fm.Fields {
			if !slices.Equal(f.Values, want[f.Var]) || f.Type != form.ListMulti {
				t.Errorf("field %s (%s) = %q, want list-multi %q", f.Var, f.Type, f.Values, want[f.Var])
			}
		}

		bare := startAll(t, backend, disco.Addresses{})
		b := bare.Dial(t, bare.AddUser(t, "bob", "pw"), "pw", "r")
		if in := discoInfo(t, b, testenv.Domain); len(in.forms) != 0 {
			t.Fatalf("forms without contact addresses: %+v", in.forms[0])
		}
	})
}

func TestCheckAddress(t *testing.T) {
	for _, v := range []string{"mailto:abuse@example.com", "xmpp:admin@example.com", "xmpp:admins@example.com?message", "https://example.com/support", "tel:+1-555-0100"} {
		if err := disco.CheckAddress(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{"", "abuse@example.com", "example.com", "mailto:", "https:// example.com", "mailto:a b@example.com", "%zz:x"} {
		if err := disco.CheckAddress(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}
