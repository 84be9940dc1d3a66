package catalog

import (
	"cmp"
	"fmt"
	"slices"
)

// HostLoad is a host as placement sees it.
type HostLoad struct {
	ID     uint64
	Shards int  // shards it runs (State.Load)
	Up     bool // reachable now
}

// Place chooses n hosts for a source's shard: the n least loaded hosts
// that are up and not in exclude, fewest shards first, ties by the lower
// id, returned in that order. Pure and deterministic: this is what
// `sources add` uses when --hosts is not given, with exclude the hosts
// already chosen (the loggers, when placing learners).
func Place(hosts []HostLoad, n int, exclude ...uint64) ([]uint64, error) {
	if n <= 0 {
		return nil, fmt.Errorf("catalog: placing %d hosts", n)
	}
	var cand []HostLoad
	seen := map[uint64]bool{}
	for _, h := range hosts {
		if seen[h.ID] {
			return nil, fmt.Errorf("catalog: host %d is listed twice", h.ID)
		}
		seen[h.ID] = true
		if h.Up && h.ID != 0 && h.ID <= MaxHost && !slices.Contains(exclude, h.ID) {
			cand = append(cand, h)
		}
	}
	if len(cand) < n {
		return nil, fmt.Errorf("catalog: %d hosts wanted, %d are up and free", n, len(cand))
	}
	slices.SortFunc(cand, func(a, b HostLoad) int {
		return cmp.Or(cmp.Compare(a.Shards, b.Shards), cmp.Compare(a.ID, b.ID))
	})
	out := make([]uint64, n)
	for i := range out {
		out[i] = cand[i].ID
	}
	return out, nil
}

// Loads returns the hosts' loads in s: up lists the hosts known to be up
// (every host of the fleet, with its state); a host that runs shards but
// is not in up is counted down.
func Loads(s *State, up map[uint64]bool) []HostLoad {
	load := s.Load()
	var out []HostLoad
	for id, u := range up {
		out = append(out, HostLoad{ID: id, Shards: load[id], Up: u})
	}
	for id, n := range load {
		if _, ok := up[id]; !ok {
			out = append(out, HostLoad{ID: id, Shards: n})
		}
	}
	slices.SortFunc(out, func(a, b HostLoad) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
