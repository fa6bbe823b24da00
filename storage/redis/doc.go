// Package redis is the presence and session registry (storage.Registry)
// shared by several xmppd nodes through Redis (7.0 or later): which
// sessions exist, on which node, with their last presence. Each node keeps
// its entries alive with a heartbeat, so the sessions of a node that dies
// vanish within the TTL.
//
// Keys, all under Options.Prefix:
//
//	pres:<bare>                   hash: resource → entry (see value.go)
//	node:<node>:<incarnation>     string with a TTL: the node is alive
//	nodeidx:<node>:<incarnation>  set of the bare JIDs the node wrote, same TTL
//
// The incarnation is random per Open, so a node restarted under the same
// name does not revive the entries of its previous life. Readers ignore
// entries whose node key is gone and delete them. A node that finds its node
// key gone (Redis lost its data, or the heartbeat stalled past the TTL)
// writes its entries again.
package redis
