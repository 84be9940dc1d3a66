package failover

import (
	"context"
	"fmt"
	"time"
)

// PeerProbe is a member's answer to "do you reach the source?": it probed
// the source named by its own log, on its own connection.
type PeerProbe struct {
	Member    uint64 `json:"member"`
	Source    string `json:"source"`
	Epoch     uint64 `json:"epoch"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Elapsed   string `json:"elapsed,omitempty"`
}

// PeerAnswer is one other member's answer, or why it could not be asked.
type PeerAnswer struct {
	Member uint64
	Probe  PeerProbe
	Err    error // the member could not be asked (down, cut off, timed out)
}

// ProbeSource probes the source this member's log names, on a connection
// of its own, bounded by the probe timeout: the second vantage point the
// leader asks before it judges the source dead. Safe for concurrent use;
// any member answers, leader or not.
func (m *Manager) ProbeSource(ctx context.Context) PeerProbe {
	st, err := m.deps.Log.State()
	p := PeerProbe{Source: st.Source.String(), Epoch: st.Epoch}
	switch {
	case err != nil:
		p.Error = "the log is not open"
		return p
	case st.Epoch == 0 || st.Source.Addr == "":
		p.Error = "the log has no source"
		return p
	case st.Source.Fenced:
		p.Error = "the source is fenced"
		return p
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	defer cancel()
	srv, err := m.deps.ConnectSource(pctx, st.Source.Addr, m.deps.SourceCred)
	if err == nil {
		err = srv.Ping(pctx)
		_ = srv.Close()
	}
	p.Elapsed = time.Since(start).Round(time.Millisecond).String()
	if err != nil {
		p.Error = err.Error()
		return p
	}
	p.Reachable = true
	return p
}

// askPeers asks the other members to probe the source and records their
// answers as the lease's second vantage point.
func (m *Manager) askPeers(ctx context.Context, source string) *Vantage {
	v := &Vantage{Asked: m.now()}
	if m.deps.AskPeers == nil {
		return v
	}
	// NB: a member answers within its probe timeout; the margin is for the
	// request itself on a loaded machine. A member that does not answer
	// (stopped, cut off) costs this bound once per ask.
	actx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout+500*time.Millisecond)
	defer cancel()
	answers := m.deps.AskPeers(actx)
	for _, a := range answers {
		switch {
		case a.Err != nil:
			v.Errors = append(v.Errors, fmt.Sprintf("member %d: %v", a.Member, a.Err))
		case a.Probe.Source != source:
			v.Errors = append(v.Errors, fmt.Sprintf("member %d probed %q, not %q (its log lags)", a.Member, a.Probe.Source, source))
		case a.Probe.Reachable:
			v.Reached = append(v.Reached, a.Member)
		default:
			v.Unreached = append(v.Unreached, a.Member)
		}
	}
	m.mu.Lock()
	m.peers = len(answers)
	m.mu.Unlock()
	return v
}
