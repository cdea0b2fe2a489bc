//go:build !unix

package tlsreload

import "io/fs"

func inode(fs.FileInfo) uint64 { return 0 }
