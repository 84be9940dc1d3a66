package failover

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger"
)

// movingLog is a MySQL log that takes in more of the source's
// transactions once the candidate has been asked for its GTIDs, as the
// ingest does while a candidate replicating from the fleet is observed.
type movingLog struct {
	*memLog
	asked *atomic.Bool
	later string
}

func (l *movingLog) State() (logger.State, error) {
	st, err := l.memLog.State()
	if l.asked.Load() {
		st.GTIDs = l.later
	}
	return st, err
}

type askedServer struct {
	*fakeServer
	asked *atomic.Bool
}

func (s askedServer) Info(ctx context.Context) (ServerInfo, error) {
	i, err := s.fakeServer.Info(ctx)
	s.asked.Store(true)
	return i, err
}

// A candidate that replicated, from the fleet, transactions the log took
// in after the observation's snapshot of the log is not errant; one that
// holds a transaction the log never had is.
func TestObserveErrantAfterSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name, server string
		errant       []string
	}{
		{"replicated since the snapshot", u1 + ":1-431", nil},
		{"errant", u1 + ":1-431," + u2 + ":1-2", []string{u2 + ":1-2"}},
	} {
		asked := &atomic.Bool{}
		ml := newMemLog("s:1")
		ml.st.Flavor, ml.st.Source.Flavor, ml.st.GTIDs = "mysql", "mysql", u1+":1-425"
		l := &movingLog{memLog: ml, asked: asked, later: u1 + ":1-431"}
		srv := askedServer{&fakeServer{info: ServerInfo{Flavor: "mysql", ServerID: 2, UUID: u2, GTIDs: tc.server, Held: tc.server}}, asked}
		cfg := DefaultConfig()
		cfg.AdminPassword = "admin-pw"
		m, err := New(cfg, Deps{Log: l, Logger: slog.New(slog.DiscardHandler),
			Connect: func(_ context.Context, addr string, _ Credentials) (Server, error) {
				if addr != "c:1" {
					return nil, errors.New("connection refused")
				}
				return srv, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		snap, _ := l.State()
		cs := m.observe(context.Background(), Candidate{Addr: "c:1"}, snap, "")
		if !reflect.DeepEqual(cs.Errant, tc.errant) || cs.Eligible != (tc.errant == nil) {
			t.Errorf("%s: errant %v, eligible %v (%s); want errant %v", tc.name, cs.Errant, cs.Eligible, cs.Reason, tc.errant)
		}
	}
}
