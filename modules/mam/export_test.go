package mam

// The hooks, for tests that call them as the core would.
var (
	Received      = (*Module).received
	Undeliverable = (*Module).undeliverable
)
