package xmpp

import "testing"

// A fanout's operation carries the stanza as serialised once, and the
// node receiving it makes the same copies as the sending node would.
func TestFanoutPayload(t *testing.T) {
	st, err := ParseStanza([]byte(`<message type="groupchat" from="r@conference.example/nick &amp; co"><body>a &lt; b</body><x xmlns="urn:example"/></message>`))
	if err != nil {
		t.Fatal(err)
	}
	f := NewFanout(st)
	tos := []string{"a@example/1", `b@example/"2"&<`}
	op, err := ParseStanza(fanoutPayload(NodeFanout{Node: "n", F: f, To: tos}))
	if err != nil {
		t.Fatal(err)
	}
	if op.Space != NSCluster || op.Local != "fanout" {
		t.Fatalf("operation %s %s", op.Space, op.Local)
	}
	var got []string
	var tmpl *Element
	for _, c := range op.Elements() {
		switch {
		case c.Space == NSCluster && c.Local == "to":
			got = append(got, c.Text())
		case c.Space == NSClient:
			tmpl = c
		}
	}
	if len(got) != 2 || got[0] != tos[0] || got[1] != tos[1] || tmpl == nil {
		t.Fatalf("addressees %q, stanza %v", got, tmpl)
	}
	for _, to := range tos {
		if a, b := string(NewFanout(tmpl).For(to)), string(f.For(to)); a != b {
			t.Fatalf("copy for %s:\n got %s\nwant %s", to, a, b)
		}
	}
}
