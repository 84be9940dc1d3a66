package binlogsvr

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/binlogsvr/binlogsvr/failover"
)

// The lease's second vantage point: before the leader judges the source
// dead, it asks the other members whether they reach it with their own
// connections (member-certificate TLS between admin APIs).

// vantageRoutes registers GET /failover/probe-source: this member probes
// the source its own log names (never an address the caller gives) and
// answers whether it reached it. Not forwarded to the leader.
func (src *source) vantageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /failover/probe-source", func(w http.ResponseWriter, req *http.Request) {
		p := src.fo.mgr.ProbeSource(req.Context())
		p.Member = src.cfg.Log.ReplicaID
		writeJSON(w, http.StatusOK, p)
	})
}

// askPeers asks every other member, in parallel, to probe the source
// (failover.Deps.AskPeers).
func (src *source) askPeers(ctx context.Context) []failover.PeerAnswer {
	m, err := src.node.Membership(ctx)
	if err != nil {
		return []failover.PeerAnswer{{Err: fmt.Errorf("reading the membership: %w", err)}}
	}
	r := src.node.Reader()
	if r == nil {
		return []failover.PeerAnswer{{Err: errors.New("the log is not open")}}
	}
	var out []failover.PeerAnswer
	for _, ids := range []map[uint64]string{m.Loggers, m.Learners} {
		for id := range ids {
			if id != src.cfg.Log.ReplicaID {
				out = append(out, failover.PeerAnswer{Member: id})
			}
		}
	}
	done := make(chan struct{}, len(out))
	for i := range out {
		a := &out[i]
		go func() {
			defer func() { done <- struct{}{} }()
			v, ok, err := r.Meta(fmt.Sprintf(metaAdminAddr, a.Member))
			if err != nil || !ok {
				a.Err = errors.New("its admin address is not registered")
				return
			}
			if err := src.srv.getJSON(ctx, src.peerURL(string(v), "/failover/probe-source"), &a.Probe); err != nil {
				a.Err = err
			}
		}()
	}
	for range out {
		<-done
	}
	return out
}
