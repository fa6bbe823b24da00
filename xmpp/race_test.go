//go:build race

package xmpp_test

// raceEnabled: the race detector multiplies the memory a program uses
// (shadow memory for every allocation), which memory bounds allow for.
const raceEnabled = true
