//go:build !race

package main

// raceDetector is set in builds with the race detector (race_on_test.go).
const raceDetector = false
