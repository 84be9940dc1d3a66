// Command acktrace reads the raft-round traces that members built with
// -tags binlogsvr_acktrace write (logger/acktrace_on.go, BINLOGSVR_ACKTRACE
// names the directory) and prints where one round's time goes, from the
// leader's proposal to its commit notice, hop by hop across the members.
// Meant for one proposer (one entry in flight): a round that overlaps
// another proposal is left out.
//
//	acktrace DIR
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

type ev struct {
	t    int64
	kind string
	idx  uint64
	peer uint64
}

func load(path string) ([]ev, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ev
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Fields(sc.Text())
		if len(p) != 4 {
			continue
		}
		t, _ := strconv.ParseInt(p[0], 10, 64)
		i, _ := strconv.ParseUint(p[2], 10, 64)
		pe, _ := strconv.ParseUint(p[3], 10, 64)
		out = append(out, ev{t, p[1], i, pe})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].t < out[b].t })
	return out, sc.Err()
}

// first returns the first event of evs at or after t0 of kind with index
// at least idx (idx 0: any), or -1.
func first(evs []ev, t0 int64, kind string, idx uint64) int64 {
	i := sort.Search(len(evs), func(i int) bool { return evs[i].t >= t0 })
	for ; i < len(evs); i++ {
		e := evs[i]
		if e.kind == kind && (idx == 0 || e.idx >= idx) {
			return e.t
		}
	}
	return -1
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: acktrace DIR")
		os.Exit(2)
	}
	members := map[uint64][]ev{}
	var leader uint64
	for id := uint64(1); id <= 9; id++ {
		evs, err := load(filepath.Join(os.Args[1], fmt.Sprintf("member-%d.trace", id)))
		if err != nil {
			continue
		}
		members[id] = evs
		for _, e := range evs {
			if e.kind == "prop" {
				leader = id
				break
			}
		}
	}
	if leader == 0 {
		fmt.Fprintln(os.Stderr, "acktrace: no member proposed")
		os.Exit(1)
	}
	L := members[leader]
	stages := []string{
		"propose → leader's Replicate send starts (step worker, sender goroutine)",
		"leader's Replicate write (marshal, TLS, write)",
		"→ follower has read and decoded it (wire, reader goroutine wake, read, decrypt)",
		"follower's handler (dragonboat queue)",
		"→ follower's save starts (step worker wake, raft step)",
		"follower's save (tan write + fdatasync)",
		"→ follower's ack send starts (sender goroutine)",
		"follower's ack write",
		"→ leader has read and decoded the ack",
		"leader's handler",
		"→ commit notice in the proposer (step worker, commit worker, proposer wake)",
	}
	extra := []string{"propose → leader's save starts", "leader's save (tan write + fdatasync)", "leader's save ends after the ack is read (rounds)",
		"ack handled or leader's save done, the later → apply starts on the leader", "apply (SM.Update)", "apply done → result in the proposer",
		"commit notice → result", "propose → commit notice", "propose → result (total)"}
	vals := make([][]float64, len(stages)+len(extra))
	rounds, skipped := 0, 0
	for i, e := range L {
		if e.kind != "prop" {
			continue
		}
		tp := e.t
		res := first(L, tp, "res", 0)
		if res < 0 {
			continue
		}
		if np := first(L[i+1:], tp, "prop", 0); np >= 0 && np < res {
			skipped++
			continue
		}
		// the round's index: the leader's first save with entries after the proposal
		var idx uint64
		var lsv0 int64 = -1
		for _, x := range L[i:] {
			if x.kind == "sv0" && x.idx > 0 {
				idx, lsv0 = x.idx, x.t
				break
			}
		}
		if idx == 0 || lsv0 > res {
			skipped++
			continue
		}
		lsv1 := first(L, lsv0, "sv1", idx)
		// the follower whose ack reached the leader first
		bestF, bestT := uint64(0), int64(-1)
		for id, evs := range members {
			if id == leader {
				continue
			}
			_ = evs
			for _, x := range L {
				if x.t >= tp && x.kind == "rack" && x.idx >= idx && x.peer%10 == id {
					if bestT < 0 || x.t < bestT {
						bestF, bestT = id, x.t
					}
					break
				}
			}
		}
		if bestF == 0 {
			skipped++
			continue
		}
		F := members[bestF]
		ts := []int64{tp}
		var srep, Srep int64 = -1, -1
		for _, x := range L {
			if x.t >= tp && x.kind == "srep" && x.idx >= idx && x.peer/10 == bestF {
				srep = x.t
				break
			}
		}
		for _, x := range L {
			if x.t >= srep && x.kind == "Srep" && x.idx >= idx && x.peer/10 == bestF {
				Srep = x.t
				break
			}
		}
		frrep := first(F, tp, "rrep", idx)
		fRrep := first(F, frrep, "Rrep", idx)
		fsv0 := first(F, fRrep, "sv0", idx)
		fsv1 := first(F, fsv0, "sv1", idx)
		fsack := first(F, fsv1, "sack", idx)
		fSack := first(F, fsack, "Sack", idx)
		lRack := first(L, bestT, "Rack", idx)
		cmt := first(L, lRack, "cmt", 0)
		ts = append(ts, srep, Srep, frrep, fRrep, fsv0, fsv1, fsack, fSack, bestT, lRack, cmt)
		ok := true
		for j := 1; j < len(ts); j++ {
			if ts[j] < 0 || ts[j] < ts[j-1]-200_000 || ts[j]-tp > int64(50*time.Millisecond) {
				ok = false
			}
		}
		if !ok || cmt > res {
			skipped++
			continue
		}
		rounds++
		for j := 1; j < len(ts); j++ {
			vals[j-1] = append(vals[j-1], float64(ts[j]-ts[j-1])/1e3)
		}
		n := len(stages)
		vals[n] = append(vals[n], float64(lsv0-tp)/1e3)
		vals[n+1] = append(vals[n+1], float64(lsv1-lsv0)/1e3)
		late := 0.0
		if lsv1 > lRack {
			late = 1
		}
		vals[n+2] = append(vals[n+2], late)
		ap0 := first(L, max(lRack, lsv1), "ap0", idx)
		ap1 := first(L, ap0, "ap1", idx)
		if ap0 < 0 || ap1 < 0 || ap1 > res {
			ap0, ap1 = res, res
		}
		vals[n+3] = append(vals[n+3], float64(ap0-max(lRack, lsv1))/1e3)
		vals[n+4] = append(vals[n+4], float64(ap1-ap0)/1e3)
		vals[n+5] = append(vals[n+5], float64(res-ap1)/1e3)
		vals[n+6] = append(vals[n+6], float64(res-cmt)/1e3)
		vals[n+7] = append(vals[n+7], float64(cmt-tp)/1e3)
		vals[n+8] = append(vals[n+8], float64(res-tp)/1e3)
	}
	fmt.Printf("leader %d: %d rounds traced, %d left out (overlapping or incomplete)\n\n", leader, rounds, skipped)
	fmt.Println("| hop | p50 µs | mean µs |\n|---|---|---|")
	all := append(append([]string(nil), stages...), extra...)
	for j, name := range all {
		v := vals[j]
		if len(v) == 0 {
			continue
		}
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		sum := 0.0
		for _, x := range s {
			sum += x
		}
		if name == extra[2] {
			fmt.Printf("| %s | | %.0f%% |\n", name, 100*sum/float64(len(s)))
			continue
		}
		fmt.Printf("| %s | %.0f | %.0f |\n", name, s[len(s)/2], sum/float64(len(s)))
	}
}
