package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// scriptServer is a MariaDB server in memory that records what the
// failover asks of it. A replica applies the whole log when its
// replication is started (or at once when caught=true).
type scriptServer struct {
	mu    sync.Mutex
	addr  string
	down  bool
	info  ServerInfo
	calls []string
	log   *readmitLog
}

func (s *scriptServer) record(format string, args ...any) {
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
}

func (s *scriptServer) Ping(context.Context) error { return nil }
func (s *scriptServer) Info(context.Context) (ServerInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.info.Replica.IORunning && s.info.Replica.SQLRunning {
		st, _ := s.log.State()
		s.info.GTIDs = st.GTIDs // NB: a running replica applies the log at once
	}
	return s.info, nil
}
func (s *scriptServer) SetReadOnly(_ context.Context, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("read_only=%v", on)
	s.info.ReadOnly = on
	return nil
}
func (s *scriptServer) ConnID() uint64                              { return 1 }
func (s *scriptServer) Sessions(context.Context) ([]Session, error) { return nil, nil }
func (s *scriptServer) Kill(_ context.Context, ids []uint64) (int, error) {
	return len(ids), nil
}
func (s *scriptServer) HoldSemiSync(context.Context) error    { s.rec("hold semi-sync waits"); return nil }
func (s *scriptServer) ReleaseAckWaits(context.Context) error { s.rec("release ACK waits"); return nil }
func (s *scriptServer) RestoreAckWaits(context.Context) error { s.rec("restore ACK waits"); return nil }
func (s *scriptServer) StartReplication(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("start replication")
	s.info.Replica.IORunning, s.info.Replica.SQLRunning = true, true
	return nil
}
func (s *scriptServer) StopReplication(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("stop replication")
	s.info.Replica = ReplicaInfo{}
	return nil
}
func (s *scriptServer) EnableSemiSyncSource(_ context.Context, d time.Duration) error {
	s.rec(fmt.Sprintf("semi-sync source on (timeout %v)", d))
	return nil
}
func (s *scriptServer) DisableSemiSyncSource(context.Context) error {
	s.rec("semi-sync source off")
	return nil
}
func (s *scriptServer) ReplicateFrom(_ context.Context, addr string, _ Credentials, own bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("replicate from %s (own binlog %v)", addr, own)
	s.info.Replica = ReplicaInfo{Configured: true, IORunning: true, SQLRunning: true}
	return nil
}
func (s *scriptServer) BinlogGTIDs(context.Context, func(string) bool) ([]string, error) {
	return nil, nil
}
func (s *scriptServer) Close() error { return nil }

func (s *scriptServer) rec(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("%s", what)
}

// TestExecuteScripts drives the failover's executor (Manager.handle and
// its steps) against servers in memory through testdata/execute/: what a
// failover or a switchover asks of each server, in order, and where it
// leaves the log. Regenerate with -rewrite and read the diff.
//
//	log source=ADDR gtids=D-S-N           the log: epoch 3, its source, it holds D-S-1..N
//	server addr=ADDR gtids=D-S-N [replica=true] [down=true] [read-only=true]
//	candidate addr=ADDR [priority=N] [never-promote=true]
//	ingest [on=true|false]                 the ingest streams from the log's source (on) or not
//	failover [force=true] [to=ADDR]        an operator's failover; prints the outcome
//	switchover to=ADDR                     a planned switchover
//	servers                                what each server was asked since the last look
//	history                                the audit trail's steps and outcomes
func TestExecuteScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/execute", func(t *testing.T, path string) {
		var (
			l       *readmitLog
			servers map[string]*scriptServer
			m       *Manager
			ingest  bool
		)
		now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
		ctx := context.Background()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key, def string) string {
				if a, ok := d.Arg(key); ok {
					return strings.Join(a.Vals, ",")
				}
				return def
			}
			seq := func(g string) (string, int) {
				i := strings.LastIndexByte(g, '-')
				n, err := strconv.Atoi(g[i+1:])
				if err != nil {
					t.Fatalf("%s: GTID %q", d.Pos, g)
				}
				return g[:i+1], n
			}
			if d.Cmd != "log" && m == nil {
				t.Fatalf("%s: no log yet", d.Pos)
			}
			switch d.Cmd {
			case "log":
				l = &readmitLog{memLog: newMemLog(arg("source", "s:1")), has: map[string]bool{}}
				g := arg("gtids", "0-1-10")
				prefix, n := seq(g)
				for i := 1; i <= n; i++ {
					l.has[prefix+strconv.Itoa(i)] = true
				}
				l.st.GTIDs = g
				servers = map[string]*scriptServer{}
				cfg := DefaultConfig()
				cfg.AdminPassword = "admin-pw"
				cfg.CatchUpTimeout, cfg.ResumeTimeout, cfg.SwitchoverTimeout = 2*time.Second, 2*time.Second, 2*time.Second
				var err error
				m, err = New(cfg, Deps{Log: l, Logger: slog.New(slog.DiscardHandler), FleetAddr: "fleet:3306",
					Now: func() time.Time { now = now.Add(time.Millisecond); return now },
					Connect: func(_ context.Context, addr string, _ Credentials) (Server, error) {
						s, ok := servers[addr]
						if !ok || s.down {
							return nil, errors.New("connection refused")
						}
						return s, nil
					},
					Ingest: func() IngestView {
						st, _ := l.State()
						if !ingest || st.Source.Fenced {
							return IngestView{}
						}
						return IngestView{Streaming: true, Source: st.Source.Addr}
					}})
				if err != nil {
					t.Fatal(err)
				}
				return ""
			case "server":
				s := &scriptServer{addr: arg("addr", ""), log: l, down: arg("down", "") == "true",
					info: ServerInfo{Flavor: "mariadb", ServerID: uint32(len(servers) + 1), GTIDs: arg("gtids", ""), Held: arg("gtids", ""),
						ReadOnly: arg("read-only", "") == "true"}}
				if arg("replica", "") == "true" {
					s.info.Replica = ReplicaInfo{Configured: true}
				}
				servers[s.addr] = s
				return ""
			case "candidate":
				c := Candidate{Addr: arg("addr", ""), NeverPromote: arg("never-promote", "") == "true"}
				c.Priority, _ = strconv.Atoi(arg("priority", "0"))
				if err := m.PutCandidate(ctx, c); err != nil {
					return "error: " + err.Error() + "\n"
				}
				return ""
			case "ingest":
				ingest = arg("on", "true") == "true"
				return ""
			case "failover", "switchover":
				st, err := l.State()
				if err != nil {
					t.Fatal(err)
				}
				r := Request{Kind: KindFailover, Force: arg("force", "") == "true", Reason: "script", To: arg("to", "")}
				if d.Cmd == "switchover" {
					r = Request{Kind: KindSwitchover, To: arg("to", ""), Reason: "script"}
				}
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				op, err := m.handle(cctx, r)
				var sb strings.Builder
				if op != nil {
					fmt.Fprintf(&sb, "operation: step %s, target %q\n", op.Step, op.Target)
				}
				if err != nil {
					fmt.Fprintf(&sb, "error: %v\n", err)
				}
				st2, _ := l.State()
				fmt.Fprintf(&sb, "log: epoch %d -> %d, source %s -> %s\n", st.Epoch, st2.Epoch, st.Source, st2.Source)
				return sb.String()
			case "servers":
				var addrs []string
				for a := range servers {
					addrs = append(addrs, a)
				}
				sort.Strings(addrs)
				var sb strings.Builder
				for _, a := range addrs {
					s := servers[a]
					s.mu.Lock()
					fmt.Fprintf(&sb, "%s: %s\n", a, strings.Join(s.calls, "; "))
					s.calls = nil
					s.mu.Unlock()
				}
				return sb.String()
			case "history":
				rs, err := m.History()
				if err != nil {
					t.Fatal(err)
				}
				var sb strings.Builder
				for _, r := range rs {
					fmt.Fprintf(&sb, "%s %s: %s\n", r.Kind, r.Step, r.Outcome)
				}
				return sb.String()
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}
