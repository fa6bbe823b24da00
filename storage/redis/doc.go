// Package redis is the presence and session registry (storage.Registry)
// and the cluster bus (storage.Bus) shared by several xmppd nodes through
// Redis (7.0 or later, a single server or Sentinel, not Redis Cluster: a
// PUBLISH there counts only one shard's receivers). The registry says which
// sessions exist, on which node, with their last presence. Each node keeps
// its entries alive with a heartbeat, so the sessions of a node that dies
// vanish within the TTL.
//
// Keys, all under Options.Prefix:
//
//	pres:<bare>                   hash: resource → entry (see value.go)
//	node:<node>:<incarnation>     string with a TTL: the node is alive
//	nodeidx:<node>:<incarnation>  set of the node's sessions' full JIDs, TTL×2
//	nodes                         set of <node>:<incarnation>: where to look
//
// The incarnation is random per Open, so a node restarted under the same
// name does not revive the entries of its previous life. Readers ignore
// entries whose node key is gone and delete them. A node that finds its node
// key gone (Redis lost its data, or the heartbeat stalled past the TTL)
// writes its entries again.
//
// # Node liveness
//
// Registry.Nodes lists the live nodes; Registry.WatchNodes polls every
// TTL/3 and reports a node incarnation that appears or vanishes. For one
// that vanished without Close it also reports its sessions, so that each
// surviving node can send "unavailable" for them to its own sessions
// within TTL+TTL/3 of the crash. Those come from the dead node's index,
// which outlives its node key by a TTL for that purpose (a copy per node
// kept in memory by every watcher would cost each node a read of every
// index at every poll; the longer TTL costs nothing until a node dies).
// Close deletes the node key and the index in one transaction: a node
// that closed ended its sessions itself, and watchers report none. Polling
// rather than keyspace notifications: those need CONFIG SET
// notify-keyspace-events, which managed Redis services may refuse, and
// expiry events come late when Redis expires keys lazily.
//
// # Cluster bus
//
// Node N listens on the pub/sub channel bus:N; Bus.Publish is one PUBLISH,
// whose reply (how many subscribers took the payload) tells the router
// whether N was there, so that it falls back at once as for an offline
// recipient (offline storage for a message) when it was not.
//
// Pub/sub, not streams (bus_bench_test.go, on one machine): a payload one
// at a time takes 28-78 µs by pub/sub against 44-88 µs by XADD and XREAD,
// and pipelined 2.7-4.4 µs against 4.0 µs. Streams keep entries for a
// reader that reconnects (at-least-once, with consumer bookkeeping and
// trimming to get right), but cannot say whether a node is there to read
// them, and a stanza replayed seconds late to a session that has moved is
// no better than one lost. Pub/sub is at most once: a payload published
// while the receiver reconnects is lost, as one is when a TCP connection
// to a client drops; XMPP's own recovery (stream management on the client
// link, the archive, presence sent again) covers both, and received=false
// covers the common case, a node that is gone.
//
// The receiving node reads its subscription on one goroutine and hands
// payloads, in order, to the handler of Bus.Serve on another, through a
// queue bounded by BusOptions.Queue and QueueBytes. When the handler falls
// behind, the bus drops what does not fit and counts it (Bus.Dropped),
// logging the start and the end of each spell. It does not block instead:
// the payloads would pile up in Redis's output buffer for the subscriber,
// which Redis caps (client-output-buffer-limit pubsub, 32 MB by default)
// by closing the connection, losing the whole buffer and everything until
// the bus has subscribed again, while using memory every node shares. A
// subscription silent for 5 s is PINGed; a PONG missing for 5 s more
// means the connection died without a word, and it is replaced. go-redis
// dials again and subscribes again after any connection error.
package redis
