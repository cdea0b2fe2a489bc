//go:build race

package main

// raceDetector is set in builds with the race detector, which runs the
// in-process servers 5–10 times slower: the largest tests scale down.
const raceDetector = true
