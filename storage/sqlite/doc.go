// Package sqlite is xmppd's embedded default storage backend: a storage.Store
// in a single SQLite file (pure Go, no cgo), in WAL mode so that xmppctl can
// write while the server runs.
package sqlite
