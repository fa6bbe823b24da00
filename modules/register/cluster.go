package register

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// opEnd asks the other nodes of a cluster (docs/cluster.md) to end an
// account's sessions there, after an in-band password change or removal:
// <register-end owner="bare" text="why"/>. What signed in with the old
// credentials no longer may, wherever it signed in.
const opEnd = "register-end"

// endElsewhere asks the other nodes to end bare's sessions with
// <not-authorized/> saying text.
func (m *Module) endElsewhere(ctx context.Context, bare jid.JID, text string) {
	if !m.srv.Clustered() {
		return
	}
	m.srv.SendClusterOpAll(ctx, xmpp.NewElement(xmpp.NSCluster, opEnd, "owner", bare.String(), "text", text))
}

// endHere is another node's endElsewhere: closing sessions is quick, and
// done in the bus's goroutine.
func (m *Module) endHere(_ context.Context, op *xmpp.Element) {
	j, err := jid.Parse(op.Get("owner"))
	if err != nil || j.Localpart() == "" || j.Domainpart() != m.srv.Domain {
		return
	}
	n := m.srv.EndSessions(j.Bare(), xmpp.StreamError{Condition: xmpp.NotAuthorized, Text: op.Get("text")}, nil)
	m.log.Info("sessions ended for another node", "jid", j.Bare().String(), "sessions_ended", n)
}
