//go:build race

package ratelimit_test

// raceEnabled shortens the tests that the race detector would make long.
const raceEnabled = true
