//go:build binlogsvr_debug

// The debug endpoints: synthetic appends, the proposer benchmark, small
// files for retention tests, pprof. They write into the log under the
// current epoch without a source, so only a binary built with
// -tags binlogsvr_debug has them (tests and benchmarks: make build-debug,
// tools/fleet); the release build (nodebug.go) refuses --debug-api.

package binlogsvr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

// debugEndpoints: this build has the debug endpoints.
const debugEndpoints = true

// debugRoutes registers the debug endpoints (with --debug-api).
func (src *source) debugRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /debug/append", src.handleDebugAppend)
	mux.HandleFunc("POST /debug/bench", src.handleDebugBench)
	// Tests: small files, so that retention and purges have files to act on.
	mux.HandleFunc("POST /debug/max-file-size", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
		defer cancel()
		res, err := src.node.Propose(ctx, &logger.Meta{Key: logger.MetaMaxFileSize, Value: []byte(req.FormValue("bytes"))})
		switch {
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "%v", err)
		case !res.Code.Stored():
			writeError(w, http.StatusBadRequest, "%s: %s", res.Code, res.Message)
		default:
			writeJSON(w, http.StatusOK, map[string]string{"max_file_size": req.FormValue("bytes")})
		}
	})
}

// pprofRoutes registers the daemon's profiles (with --debug-api).
func (s *Server) pprofRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// synth makes synthetic transactions that continue the log's GTID state,
// for the debug API (tests and benchmarks without a live source).
type synth struct {
	mu       sync.Mutex
	flav     binlog.Flavor
	prefix   string // "uuid:" or "d-s-"
	next     uint64
	serverID uint32
	pos      uint32
	size     int
	tmpl     []byte // a transaction of size bytes, retagged for each GTID
}

func newSynth(st logger.State, size int) (*synth, error) {
	f, err := binlog.FlavorByName(st.Flavor)
	if err != nil {
		return nil, err
	}
	s := &synth{flav: f, serverID: st.Source.ServerID, pos: 4, size: size, next: 1}
	uuid := st.Source.UUID
	if uuid == "" {
		uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562" // NB: MySQL only: MariaDB GTIDs have no uuid
	}
	s.prefix = f.GTIDPrefix(uuid, st.Source.ServerID, st.LastGTID)
	if last := st.LastGTID; last != "" {
		i := strings.LastIndexAny(last, ":-")
		n, err := strconv.ParseUint(last[i+1:], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cannot continue GTID %q: %v", last, err)
		}
		s.next = n + 1
	}
	return s, nil
}

// enqueue makes the next transaction and queues it, under the lock, so
// GTIDs reach the proposer in order.
func (s *synth) enqueue(ctx context.Context, p *logger.Proposer) (*logger.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.prefix + strconv.FormatUint(s.next, 10)
	if s.tmpl == nil {
		s.tmpl, _ = binlogtest.Txn(s.flav, g, s.serverID, 4, s.size)
	}
	raw, err := binlogtest.Retag(s.flav, s.tmpl, g)
	if err != nil {
		return nil, err
	}
	end := s.pos + uint32(len(raw))
	w, err := p.Enqueue(ctx, logger.Txn{GTID: g, SourceFile: "synthetic.000001", SourceEnd: uint64(end), Events: raw})
	if err == nil {
		s.next++
		s.pos = end
	}
	return w, err
}

// debugRun starts a proposer for synthetic appends on the leader.
func (src *source) debugRun(size, inflight int, linger time.Duration) (*synth, *logger.Proposer, func(), error) {
	if !src.node.IsLeader() {
		id, _ := src.node.LeaderID()
		return nil, nil, nil, fmt.Errorf("member %d is not the leader (the leader is %d)", src.cfg.Log.ReplicaID, id)
	}
	st := src.node.Reader().State()
	if st.Epoch == 0 {
		return nil, nil, nil, errors.New("the log has no source yet (start with --source)")
	}
	sy, err := newSynth(st, size)
	if err != nil {
		return nil, nil, nil, err
	}
	fde := st.FDE
	if len(fde) == 0 {
		fde = binlogtest.FDE(sy.flav, st.Source.ServerID)
	}
	p := logger.NewProposer(src.node, logger.ProposerConfig{Epoch: st.Epoch, Source: st.Source.Addr, FDE: fde, MaxInFlight: inflight, Linger: linger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	return sy, p, func() { cancel(); <-done }, nil
}

// handleDebugAppend appends n synthetic transactions of size bytes.
func (src *source) handleDebugAppend(w http.ResponseWriter, req *http.Request) {
	n, size := queryInt(req, "n", 1), queryInt(req, "size", 200)
	if n < 1 || n > 1_000_000 || size < 0 || size > 64<<20 {
		writeError(w, http.StatusBadRequest, "n must be 1..1000000 and size 0..67108864")
		return
	}
	src.appendMu.Lock()
	defer src.appendMu.Unlock()
	sy, p, stop, err := src.debugRun(size, 4, logger.DefaultLinger)
	if err != nil {
		writeError(w, http.StatusConflict, "%v", err)
		return
	}
	defer stop()
	ctx, cancel := context.WithTimeout(req.Context(), 60*time.Second)
	defer cancel()
	var waits []*logger.Ticket
	for i := 0; i < n; i++ {
		wt, err := sy.enqueue(ctx, p)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "after %d: %v", i, err)
			return
		}
		waits = append(waits, wt)
	}
	for i, wt := range waits {
		if err := wt.Wait(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, "transaction %d of %d: %v", i+1, n, err)
			return
		}
	}
	st, _ := src.localStatus()
	writeJSON(w, http.StatusOK, map[string]any{"appended": n, "last_gtid": st.LastGTID, "last_file": st.LastFile, "last_position": st.LastPosition})
}

// BenchResult is the JSON of POST /debug/bench.
type BenchResult = api.BenchResult

// handleDebugBench runs concurrency proposers of size-byte transactions for
// a duration on this (leader) member, each waiting for its commit before
// the next, and reports throughput and commit latency.
func (src *source) handleDebugBench(w http.ResponseWriter, req *http.Request) {
	conc, size := queryInt(req, "concurrency", 1), queryInt(req, "size", 200)
	dur := queryDuration(req, "duration", 5*time.Second)
	if conc < 1 || conc > 4096 || size < 0 || size > 64<<20 || dur <= 0 || dur > 10*time.Minute {
		writeError(w, http.StatusBadRequest, "concurrency 1..4096, size 0..67108864, duration up to 10m")
		return
	}
	src.appendMu.Lock()
	defer src.appendMu.Unlock()
	// NB: linger=0 turns the proposer's linger off (a side-by-side
	// comparison).
	sy, p, stop, err := src.debugRun(size, queryInt(req, "inflight", 4), queryDuration(req, "linger", logger.DefaultLinger))
	if err != nil {
		writeError(w, http.StatusConflict, "%v", err)
		return
	}
	defer stop()
	var mu sync.Mutex
	var lats []time.Duration
	var errs int
	var firstErr string
	var bytes int64
	end := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			ctx, cancel := context.WithTimeout(req.Context(), dur+30*time.Second)
			defer cancel()
			for time.Now().Before(end) {
				t0 := time.Now()
				wt, err := sy.enqueue(ctx, p)
				if err == nil {
					err = wt.Wait(ctx)
				}
				if err != nil {
					mu.Lock()
					if errs++; firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					if errors.Is(err, logger.ErrProposerStopped) {
						return
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(q float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[int(q*float64(len(lats)-1))].Microseconds()) / 1000
	}
	bytes = int64(len(lats)) * int64(len(sy.tmpl))
	writeJSON(w, http.StatusOK, BenchResult{Concurrency: conc, Size: size, Txns: len(lats), Seconds: el,
		TPS: float64(len(lats)) / el, MBps: float64(bytes) / el / 1e6, P50ms: pct(0.5), P99ms: pct(0.99),
		Errors: errs, FirstError: firstErr})
}
