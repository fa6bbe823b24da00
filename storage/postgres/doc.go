// Package postgres is xmppd's production storage backend: a storage.Store on
// PostgreSQL through pgx/v5, safe to share between several nodes.
package postgres
