package main

import "github.com/usher-iot/usher/internal/syncbuf"

// lockedBuffer collects output one goroutine writes while another reads it.
type lockedBuffer = syncbuf.Buffer
