package logger

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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

// Multiplex is --raft-log-multiplex (HostConfig.RaftLogMultiplex): auto,
// true or false; the flag alone is true.
type Multiplex uint8

const (
	// MultiplexAuto: StartHost creates a new data directory in
	// DefaultHostMultiplexed's layout and opens an existing one in the
	// layout it holds.
	MultiplexAuto Multiplex = iota
	// MultiplexOn: multiplexed; an existing per-shard directory is refused.
	MultiplexOn
	// MultiplexOff: per-shard; an existing multiplexed directory is refused.
	MultiplexOff
)

// DefaultHostMultiplexed is the layout MultiplexAuto gives a new data
// directory of StartHost: per-shard for now. The sources benchmark
// favoured multiplexed logs at 10 and 20 sources (docs/BENCHMARKS.md,
// "Multiplexed raft log"), but on two noisy pairs only, and the layout
// reaches into dragonboat's internal tan package (tanmux.go) and has not
// had its own crash and retention tests: it stays an operator's choice
// (--raft-log-multiplex=true on a new host) until it has.
const DefaultHostMultiplexed = false

func (m Multiplex) String() string {
	switch m {
	case MultiplexOn:
		return "true"
	case MultiplexOff:
		return "false"
	}
	return "auto"
}

// Set parses auto or a bool.
func (m *Multiplex) Set(s string) error {
	if strings.EqualFold(s, "auto") {
		*m = MultiplexAuto
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want auto, true or false, got %q", s)
	}
	*m = MultiplexOff
	if b {
		*m = MultiplexOn
	}
	return nil
}

// Type is the flag's type in the usage text.
func (m *Multiplex) Type() string { return "auto|bool" }

func layoutName(multiplexed bool) string {
	if multiplexed {
		return layoutMultiplexed
	}
	return layoutPerShard
}

// checkRaftLayout returns whether the raft log of dataDir is to be
// multiplexed, or refuses it if it holds the other layout than m asks for.
// StartHost (single false) records the layout of a new raft directory;
// Start (single) opens per-shard raft logs only, and writes nothing.
func checkRaftLayout(fs config.IFS, dataDir string, m Multiplex, single bool) (bool, error) {
	if fs == nil {
		fs = vfs.Default
	}
	raftDir := filepath.Join(dataDir, "raft")
	have, err := raftLayout(fs, raftDir)
	if err != nil {
		return false, fmt.Errorf("logger: reading the raft log's layout in %s: %w", raftDir, err)
	}
	if single {
		if have == layoutMultiplexed {
			return false, fmt.Errorf("logger: the data directory %s holds a multiplexed raft log (created by a host of several sources, --raft-log-multiplex); a one-source daemon opens per-shard raft logs only", dataDir)
		}
		return false, nil
	}
	var want string
	switch {
	case m == MultiplexOn:
		want = layoutMultiplexed
	case m == MultiplexOff:
		want = layoutPerShard
	case have != "":
		want = have
	default:
		want = layoutName(DefaultHostMultiplexed)
	}
	switch {
	case have == want:
		return want == layoutMultiplexed, nil
	case have != "":
		hint := "--raft-log-multiplex=true or auto"
		if have == layoutPerShard {
			hint = "--raft-log-multiplex=false or auto"
		}
		return false, fmt.Errorf("logger: the data directory %s holds a %s raft log and --raft-log-multiplex=%s asks for a %s one; the layout cannot change once a host has data: start it with %s, "+
			"or move its replicas to a host with a new data directory", dataDir, have, m, want, hint)
	}
	// A new raft directory: record the layout before dragonboat writes.
	if err := fs.MkdirAll(raftDir, 0o755); err != nil {
		return false, err
	}
	return want == layoutMultiplexed, writeLayout(fs, raftDir, want)
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
