package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Apply applies c to s and returns the new state and the result. Pure and
// deterministic: no clock, no randomness, no map iteration order reaches
// the result. s is never changed: a refused command returns s itself, an
// applied one a new State (sharing the sources it did not change) whose
// Version is one more.
func Apply(s *State, c Command) (*State, Result) {
	if c.IfVersion != nil && *c.IfVersion != s.Version {
		return s, refuse(s, StaleVersion, "the catalog is at version %d, not %d", s.Version, *c.IfVersion)
	}
	var (
		next *State
		res  Result
	)
	switch c.Op {
	case OpAdd:
		next, res = add(s, c)
	case OpRemove:
		next, res = remove(s, c)
	case OpDrop:
		next, res = drop(s, c)
	case OpMoveBegin:
		next, res = moveBegin(s, c)
	case OpMoveStep:
		next, res = moveStep(s, c)
	case OpMoveEnd:
		next, res = moveEnd(s, c)
	case OpHost:
		next, res = host(s, c)
	case OpAudit:
		next, res = audit(s, c)
	case OpStarted:
		next, res = started(s, c)
	default:
		return s, refuse(s, Invalid, "unknown op %q", c.Op)
	}
	if res.Code != OK || next == s {
		return s, res // refused, or nothing to change
	}
	if c.Op == OpAudit {
		// NB: the trail is not the catalog's placement: an audit record
		// keeps the Version, so that it neither wakes the hosts' reconcile
		// loops nor makes a concurrent compare-and-set stale.
		res.Version = s.Version
		return next, res
	}
	next.Version = s.Version + 1
	res.Version = next.Version
	return next, res
}

func refuse(s *State, code Code, format string, args ...any) Result {
	return Result{Code: code, Message: fmt.Sprintf(format, args...), Version: s.Version}
}

// add: a new source with the next shard id.
func add(s *State, c Command) (*State, Result) {
	if err := validName(c.Name); err != nil {
		return s, refuse(s, Invalid, "%v", err)
	}
	if _, dup := s.Sources[c.Name]; dup {
		return s, refuse(s, Exists, "source %q exists", c.Name)
	}
	if err := validAddr(c.SourceAddr, false); err != nil {
		return s, refuse(s, Invalid, "source %q: %v", c.Name, err)
	}
	if n := len(c.Loggers); n != 3 && n != 5 {
		return s, refuse(s, Invalid, "source %q: 3 or 5 loggers, not %d", c.Name, n)
	}
	if len(c.Learners) > MaxLearners {
		return s, refuse(s, Invalid, "source %q: at most %d learners, not %d", c.Name, MaxLearners, len(c.Learners))
	}
	hosts := map[uint64]bool{}
	for _, h := range slices.Concat(c.Loggers, c.Learners) {
		if h == 0 || h > MaxHost {
			return s, refuse(s, Invalid, "source %q: host id %d is not in 1..%d", c.Name, h, MaxHost)
		}
		if hosts[h] {
			return s, refuse(s, Invalid, "source %q: host %d is listed twice (loggers and learners are distinct hosts)", c.Name, h)
		}
		hosts[h] = true
	}
	for _, h := range slices.Sorted(maps.Keys(c.DumpAddrs)) {
		if !hosts[h] {
			return s, refuse(s, Invalid, "source %q: a dump address for host %d, which does not run it", c.Name, h)
		}
		if code, msg := checkDump(s, c.Name, h, c.DumpAddrs[h]); code != OK {
			return s, refuse(s, code, "source %q: %s", c.Name, msg)
		}
	}
	for _, f := range c.Failover {
		if !strings.HasPrefix(f, "--failover-") || !strings.Contains(f, "=") || strings.ContainsAny(f, "\n\x00") {
			return s, refuse(s, Invalid, "source %q: failover flag %q: want --failover-NAME=VALUE", c.Name, f)
		}
	}
	for _, f := range c.Retention {
		if !strings.HasPrefix(f, "--retain-") || !strings.Contains(f, "=") || strings.ContainsAny(f, "\n\x00") {
			return s, refuse(s, Invalid, "source %q: retention flag %q: want --retain-NAME=VALUE", c.Name, f)
		}
	}
	src := &Source{Name: c.Name, ShardID: s.NextShard, SourceAddr: c.SourceAddr, State: Active,
		Loggers: map[uint64]uint64{}, DumpAddrs: maps.Clone(c.DumpAddrs), Failover: slices.Clone(c.Failover),
		Retention: slices.Clone(c.Retention)}
	for _, h := range c.Loggers {
		src.Loggers[h] = src.nextReplica(h)
	}
	src.Initial = slices.Sorted(slices.Values(c.Loggers))
	for _, h := range c.Learners {
		if src.Learners == nil {
			src.Learners = map[uint64]uint64{}
		}
		src.Learners[h] = src.nextReplica(h)
	}
	next := s.clone()
	next.Sources[c.Name] = src
	next.NextShard = s.NextShard + 1
	return next, Result{Code: OK, ShardID: src.ShardID}
}

// checkDump: addr is a valid dump address that host serves no other
// source on (name's own addresses do not count).
func checkDump(s *State, name string, host uint64, addr string) (Code, string) {
	if err := validAddr(addr, true); err != nil {
		return Invalid, fmt.Sprintf("host %d's dump %v", host, err)
	}
	for _, other := range s.Names() {
		if other == name {
			continue
		}
		src := s.Sources[other]
		taken := []string{src.DumpAddrs[host]}
		if src.Move != nil && src.Move.To == host {
			taken = append(taken, src.Move.ToDump)
		}
		for _, t := range taken {
			if t != "" && addrsClash(t, addr) {
				return AddrInUse, fmt.Sprintf("host %d serves source %q on %s", host, other, t)
			}
		}
	}
	return OK, ""
}

// source returns the named source, or a refusal.
func source(s *State, name string) (*Source, Result) {
	src, ok := s.Sources[name]
	if !ok {
		return nil, refuse(s, NotFound, "no source %q", name)
	}
	return src, Result{Code: OK}
}

// remove marks an active source removing.
func remove(s *State, c Command) (*State, Result) {
	src, res := source(s, c.Name)
	switch {
	case src == nil:
		return s, res
	case src.State != Active:
		return s, refuse(s, WrongState, "source %q is %s", c.Name, src.State)
	case src.Move != nil:
		return s, refuse(s, MoveInProgress, "source %q: end or abort the move of host %d first", c.Name, src.Move.From)
	}
	return replace(s, src, func(n *Source) { n.State = Removing }), Result{Code: OK}
}

// drop deletes a removing source; its shard id is not handed out again.
func drop(s *State, c Command) (*State, Result) {
	src, res := source(s, c.Name)
	switch {
	case src == nil:
		return s, res
	case src.State != Removing:
		return s, refuse(s, WrongState, "source %q is %s: remove it first", c.Name, src.State)
	}
	next := s.clone()
	delete(next.Sources, c.Name)
	return next, Result{Code: OK}
}

// moveBegin records a logger's move from host From to host To, and hands
// To its replica id.
func moveBegin(s *State, c Command) (*State, Result) {
	src, res := source(s, c.Name)
	switch {
	case src == nil:
		return s, res
	case src.State != Active:
		return s, refuse(s, WrongState, "source %q is %s", c.Name, src.State)
	case src.Move != nil:
		return s, refuse(s, MoveInProgress, "source %q: host %d is moving to host %d", c.Name, src.Move.From, src.Move.To)
	case src.Loggers[c.From] == 0:
		return s, refuse(s, Invalid, "source %q: host %d is not one of its loggers", c.Name, c.From)
	case c.To == 0 || c.To > MaxHost:
		return s, refuse(s, Invalid, "source %q: host id %d is not in 1..%d", c.Name, c.To, MaxHost)
	}
	if _, runs := src.Hosts()[c.To]; runs {
		return s, refuse(s, Invalid, "source %q: host %d already runs it", c.Name, c.To)
	}
	if c.ToDump != "" {
		if code, msg := checkDump(s, c.Name, c.To, c.ToDump); code != OK {
			return s, refuse(s, code, "source %q: %s", c.Name, msg)
		}
	}
	var replica uint64
	next := replace(s, src, func(n *Source) {
		replica = n.nextReplica(c.To)
		n.Move = &Move{From: c.From, To: c.To, ToReplica: replica, ToDump: c.ToDump, Step: MoveBegun}
	})
	return next, Result{Code: OK, ReplicaID: replica}
}

// moveStep records the next step of the move; recording the current step
// again is a no-op (a retried proposal).
func moveStep(s *State, c Command) (*State, Result) {
	src, res := source(s, c.Name)
	if src == nil {
		return s, res
	}
	if src.Move == nil {
		return s, refuse(s, NoMove, "source %q has no move in progress", c.Name)
	}
	at, ok := moveOrder[c.Step]
	if !ok || c.Step == MoveBegun {
		return s, refuse(s, Invalid, "move step %q: want %s, %s or %s", c.Step, MoveLearner, MovePromoted, MoveRemoved)
	}
	cur := moveOrder[src.Move.Step]
	switch {
	case at == cur:
		return s, Result{Code: OK, Version: s.Version, Message: "already recorded"}
	case at != cur+1:
		return s, refuse(s, WrongStep, "source %q: the move is at %s, so %s cannot be next", c.Name, src.Move.Step, c.Step)
	}
	return replace(s, src, func(n *Source) { n.Move.Step = c.Step }), Result{Code: OK}
}

// moveEnd finishes a move whose outgoing host was removed from the shard,
// or aborts one before the incoming host was promoted.
func moveEnd(s *State, c Command) (*State, Result) {
	src, res := source(s, c.Name)
	if src == nil {
		return s, res
	}
	m := src.Move
	switch {
	case m == nil:
		return s, refuse(s, NoMove, "source %q has no move in progress", c.Name)
	case c.Abort && moveOrder[m.Step] >= moveOrder[MovePromoted]:
		return s, refuse(s, WrongStep, "source %q: host %d was promoted already: finish the move", c.Name, m.To)
	case !c.Abort && m.Step != MoveRemoved:
		return s, refuse(s, WrongStep, "source %q: the move is at %s, not %s", c.Name, m.Step, MoveRemoved)
	}
	return replace(s, src, func(n *Source) {
		n.Move = nil
		if c.Abort {
			return // NB: To's replica id stays used (Held): it may have joined the shard
		}
		delete(n.Loggers, m.From)
		n.Loggers[m.To] = m.ToReplica
		delete(n.DumpAddrs, m.From)
		if m.ToDump != "" {
			if n.DumpAddrs == nil {
				n.DumpAddrs = map[uint64]string{}
			}
			n.DumpAddrs[m.To] = m.ToDump
		}
	}), Result{Code: OK}
}

// host records where host c.Host is. A host keeps its raft address: the
// shards it runs know it by that address, so a different one is refused;
// its admin address may change. The same record again changes nothing.
func host(s *State, c Command) (*State, Result) {
	switch {
	case c.Host == 0 || c.Host > MaxHost:
		return s, refuse(s, Invalid, "host id %d is not in 1..%d", c.Host, MaxHost)
	case validAddr(c.RaftAddr, false) != nil:
		return s, refuse(s, Invalid, "host %d's raft %v", c.Host, validAddr(c.RaftAddr, false))
	case validAddr(c.AdminAddr, false) != nil:
		return s, refuse(s, Invalid, "host %d's admin %v", c.Host, validAddr(c.AdminAddr, false))
	}
	old, known := s.Hosts[c.Host]
	if known && old.RaftAddr != c.RaftAddr {
		return s, refuse(s, WrongState, "host %d's raft address is %s, not %s: a host keeps its raft address (its shards know it by it)", c.Host, old.RaftAddr, c.RaftAddr)
	}
	for _, id := range slices.Sorted(maps.Keys(s.Hosts)) {
		if id != c.Host && s.Hosts[id].RaftAddr == c.RaftAddr {
			return s, refuse(s, Invalid, "host %d's raft address %s is host %d's", c.Host, c.RaftAddr, id)
		}
	}
	h := Host{RaftAddr: c.RaftAddr, AdminAddr: c.AdminAddr}
	if known && old == h {
		return s, Result{Code: OK, Version: s.Version, Message: "already recorded"}
	}
	next := s.clone()
	if next.Hosts == nil {
		next.Hosts = map[uint64]Host{}
	}
	next.Hosts[c.Host] = h
	return next, Result{Code: OK}
}

// audit appends a fleet-wide admin call to the trail, which keeps the
// last MaxAudit.
func audit(s *State, c Command) (*State, Result) {
	if c.Audit == nil || c.Audit.Call == "" {
		return s, refuse(s, Invalid, "an audit record without a call")
	}
	next := s.clone()
	keep := s.Audit
	if len(keep) >= MaxAudit {
		keep = keep[len(keep)-MaxAudit+1:]
	}
	next.Audit = append(slices.Clone(keep), *c.Audit)
	return next, Result{Code: OK}
}

// started records that host c.Host started replica c.Replica of the
// source's shard; the same record again is an OK no-op.
func started(s *State, c Command) (*State, Result) {
	src, res := source(s, c.Name)
	if src == nil {
		return s, res
	}
	if r, ok := src.Hosts()[c.Host]; !ok || r != c.Replica {
		return s, refuse(s, Invalid, "source %q: host %d does not run replica %d of it", c.Name, c.Host, c.Replica)
	}
	if src.Started[c.Host] == c.Replica {
		return s, Result{Code: OK, Version: s.Version, Message: "already recorded"}
	}
	return replace(s, src, func(n *Source) {
		if n.Started == nil {
			n.Started = map[uint64]uint64{}
		}
		n.Started[c.Host] = c.Replica
	}), Result{Code: OK}
}

// replace returns s with a changed copy of src.
func replace(s *State, src *Source, change func(*Source)) *State {
	n := src.clone()
	change(n)
	next := s.clone()
	next.Sources[n.Name] = n
	return next
}
