//go:build !linux

package logger

import "github.com/lni/vfs"

func dataSync(f vfs.File) error { return f.Sync() }

func prealloc(vfs.File, int64) {}
