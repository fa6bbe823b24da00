// Package storagetest is the conformance suite every storage backend must
// pass: Run the same cases against each storage.Store implementation.
package storagetest
