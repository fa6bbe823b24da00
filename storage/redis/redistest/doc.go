// Package redistest gives tests the address of a Redis server and a key
// prefix of their own, whose keys are deleted when the test ends.
package redistest
