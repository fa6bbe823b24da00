package register_test

import (
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/register"
)

// TestSlixRegisters: slixmpp, a third-party client, creates its account
// with its XEP-0077 plugin: refused with <not-allowed/> while creation is
// off (the client asks although it is not offered); when on, it registers
// and signs in on the same stream, and a second account from the same
// address is refused with <resource-constraint/>.
func TestSlixRegisters(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		carol := jid.MustParse("carol@" + testenv.Domain)
		dave := jid.MustParse("dave@" + testenv.Domain)

		off := testenv.Start(t, backend)
		d := off.StartDriver(t, carol, "carol's pw", "slix", "--register")
		if d.RegisterError != "not-allowed" {
			t.Fatalf("registration while off: error %q, want not-allowed", d.RegisterError)
		}
		if exists(t, off, "carol") {
			t.Fatal("an account was created while registration is off")
		}

		on := startWith(t, backend, register.Creation{Enabled: true, PerAddress: 1, Window: time.Hour})
		d = on.StartDriver(t, carol, "carol's pw", "slix", "--register")
		if d.RegisterError != "" || d.JID.Bare().String() != carol.String() {
			t.Fatalf("registration while on: error %q, bound %s", d.RegisterError, d.JID)
		}
		d = on.StartDriver(t, dave, "pw", "slix", "--register")
		if d.RegisterError != "resource-constraint" {
			t.Fatalf("second registration from one address: error %q, want resource-constraint", d.RegisterError)
		}
		if exists(t, on, "dave") {
			t.Fatal("an account beyond the address's limit was created")
		}
	})
}
