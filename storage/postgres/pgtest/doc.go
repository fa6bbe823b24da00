// Package pgtest gives tests a PostgreSQL DSN isolated in a fresh schema that
// is dropped when the test ends.
package pgtest
