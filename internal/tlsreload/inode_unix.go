//go:build unix

package tlsreload

import (
	"io/fs"
	"syscall"
)

// inode is the file's inode number, which changes when a file is renamed
// over it even if its time and size do not.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
