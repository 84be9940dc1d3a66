//go:build !linux

package logger

import "github.com/lni/vfs"

func dataSync(f vfs.File) error { return f.Sync() }

func prealloc(vfs.File, int64) {}

func freeBytes(string) (int64, bool) { return 0, false }
