//go:build race

package e2e

// raceEnabled makes the e2e tests build the binary under test with -race
// when they themselves run with it.
const raceEnabled = true
