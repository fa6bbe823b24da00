package xmpp

import (
	"slices"
	"testing"
)

// The nodes a message to a bare JID goes to, over the whole cluster's
// resources (RFC 6121 §8.5.2.1.1).
func TestRemoteTargets(t *testing.T) {
	rms := []remote{
		{node: "b", resource: "1", priority: 5},
		{node: "c", resource: "2", priority: 5},
		{node: "c", resource: "3", priority: 1},
		{node: "d", resource: "4", priority: -1},
	}
	for _, c := range []struct {
		name      string
		local     int
		all       bool
		nodes     []string
		keepLocal bool
	}{
		{"none here", -1, false, []string{"b", "c"}, false},
		{"lower here", 3, false, []string{"b", "c"}, false},
		{"as high here", 5, false, []string{"b", "c"}, true},
		{"higher here", 7, false, nil, true},
		{"headline: every non-negative", 0, true, []string{"b", "c"}, true},
	} {
		nodes, keep := remoteTargets(rms, c.local, c.all)
		if !slices.Equal(nodes, c.nodes) || keep != c.keepLocal {
			t.Errorf("%s: nodes %v keepLocal %v, want %v %v", c.name, nodes, keep, c.nodes, c.keepLocal)
		}
	}
}
