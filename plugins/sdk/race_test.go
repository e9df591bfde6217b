//go:build race

package sdk

// raceEnabled: the race detector makes sync.Pool drop a random share of
// what is put back, so tests of pool reuse cannot bound allocations.
const raceEnabled = true
