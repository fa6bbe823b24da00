// Package memory is the presence and session registry (storage.Registry) of
// a single xmppd node, kept in process: the default when no Redis is
// configured. Peer gives registries for further nodes sharing its entries,
// so that tests can run several nodes in one process.
package memory
