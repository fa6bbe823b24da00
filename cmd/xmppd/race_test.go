//go:build race

package main

// raceEnabled: under the race detector the test's own clients cost several
// times their usual CPU, which the server then lacks on a small machine.
const raceEnabled = true
