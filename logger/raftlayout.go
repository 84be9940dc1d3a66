package logger

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/vfs"
)

// A data directory's raft log is of one layout for its life: per-shard tan
// (one log file per shard, "tandb/node-S-R", two step workers) or
// multiplexed tan (HostConfig.RaftLogMultiplex: "tandb/shard-K", 16 step
// workers). Neither dragonboat nor tan tells them apart on open: both
// report the LogDB type "Tan", and the other layout's records would not be
// found where the other keeper looks (the step workers' count in the flag
// file catches it, as dragonboat's ErrHardSettingsChanged, which does not
// say why). So StartHost records the layout in raftLayoutFile when it
// creates the raft directory, and refuses the other one, naming the flag.
// A raft directory without the file is from before it (per-shard: the only
// layout then) unless tan's directories say otherwise.
const raftLayoutFile = "raft-log-layout"

const (
	layoutPerShard    = "per-shard"
	layoutMultiplexed = "multiplexed"
)

func layoutName(multiplexed bool) string {
	if multiplexed {
		return layoutMultiplexed
	}
	return layoutPerShard
}

// checkRaftLayout refuses dataDir if its raft log is not of the layout
// asked for; write records the layout of a new raft directory (StartHost;
// Start only reads).
func checkRaftLayout(fs config.IFS, dataDir string, multiplexed, write bool) error {
	if fs == nil {
		fs = vfs.Default
	}
	raftDir := filepath.Join(dataDir, "raft")
	want := layoutName(multiplexed)
	have, err := raftLayout(fs, raftDir)
	if err != nil {
		return fmt.Errorf("logger: reading the raft log's layout in %s: %w", raftDir, err)
	}
	switch {
	case have == want:
		return nil
	case have != "":
		hint := "start it with --raft-log-multiplex=true"
		if have == layoutPerShard {
			hint = "start it with --raft-log-multiplex=false"
		}
		if !write {
			return fmt.Errorf("logger: the data directory %s holds a %s raft log (created by a host of several sources with --raft-log-multiplex); a one-source daemon opens per-shard raft logs only", dataDir, have)
		}
		return fmt.Errorf("logger: the data directory %s holds a %s raft log and --raft-log-multiplex=%t asks for a %s one; the layout cannot change once a host has data: %s, "+
			"or move the replicas to a host with a new data directory", dataDir, have, multiplexed, want, hint)
	case !write:
		return nil
	}
	// A new raft directory: record the layout before dragonboat writes.
	if err := fs.MkdirAll(raftDir, 0o755); err != nil {
		return err
	}
	return writeLayout(fs, raftDir, want)
}

// raftLayout returns the layout of raftDir: "" if it does not exist.
func raftLayout(fs vfs.FS, raftDir string) (string, error) {
	f, err := fs.Open(filepath.Join(raftDir, raftLayoutFile))
	switch {
	case err == nil:
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 64))
		if err != nil {
			return "", err
		}
		switch l := strings.TrimSpace(string(b)); l {
		case layoutPerShard, layoutMultiplexed:
			return l, nil
		default:
			return "", fmt.Errorf("%s: unknown layout %q", raftLayoutFile, l)
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	if _, err := fs.Stat(raftDir); errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	// NB: tan's directory is raftDir/<host>/<deployment>/tandb: its db
	// directories are node-S-R (per-shard) or shard-K (multiplexed),
	// internal/tan/db_keeper.go:54-56 and 99-101.
	layout := layoutPerShard
	err = walkTanDBs(fs, raftDir, 0, func(name string) {
		if strings.HasPrefix(name, "shard-") {
			layout = layoutMultiplexed
		}
	})
	return layout, err
}

func walkTanDBs(fs vfs.FS, dir string, depth int, f func(string)) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		fi, err := fs.Stat(p)
		if err != nil || !fi.IsDir() {
			continue
		}
		if n == "tandb" {
			dbs, err := fs.List(p)
			if err != nil {
				return err
			}
			for _, d := range dbs {
				f(d)
			}
		} else if depth < 3 {
			if err := walkTanDBs(fs, p, depth+1, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeLayout writes raftLayoutFile durably: a temporary file synced,
// renamed, and the directory synced.
func writeLayout(fs vfs.FS, raftDir, layout string) error {
	tmp := filepath.Join(raftDir, raftLayoutFile+".tmp")
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(layout + "\n")); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, filepath.Join(raftDir, raftLayoutFile)); err != nil {
		return err
	}
	d, err := fs.OpenDir(raftDir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
