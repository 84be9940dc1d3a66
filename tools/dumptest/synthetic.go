package dumptest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

// SyntheticSourceUUID is the server uuid of the synthetic MySQL source.
const SyntheticSourceUUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"

// Synthetic appends realistic synthetic transactions (binlogtest) to a
// log, as a source of the given flavor would have written them, without a
// real server: fast protocol tests and benchmarks.
type Synthetic struct {
	node *logger.Node
	flav binlog.Flavor
	prop *logger.Proposer
	stop context.CancelFunc
	done chan error
	next int
	pos  uint32
}

// NewSynthetic sets the log's source to a synthetic one of flavor flav and
// starts a proposer; Close (registered with t.Cleanup) stops it.
func NewSynthetic(t testing.TB, node *logger.Node, flav binlog.Flavor) *Synthetic {
	t.Helper()
	s, err := StartSynthetic(node, flav)
	if err != nil {
		t.Fatalf("dumptest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartSynthetic is NewSynthetic without a testing.TB.
func StartSynthetic(node *logger.Node, flav binlog.Flavor) (*Synthetic, error) {
	src := logger.Source{Addr: "synthetic:3306", ServerID: 1, Flavor: flav.Name()}
	if flav.HasServerUUID() {
		src.UUID = SyntheticSourceUUID
	}
	st := node.Reader().State()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	res, err := node.Propose(ctx, &logger.SetSource{ExpectedEpoch: st.Epoch, NewEpoch: st.Epoch + 1, Source: src})
	cancel()
	if err != nil {
		return nil, err
	}
	if !res.Code.Stored() {
		return nil, fmt.Errorf("set-source: %s: %s", res.Code, res.Message)
	}
	fde := binlogtest.FDE(flav, 1)
	s := &Synthetic{node: node, flav: flav, done: make(chan error, 1), next: 1, pos: uint32(4 + len(fde))}
	s.prop = logger.NewProposer(node, logger.ProposerConfig{Epoch: st.Epoch + 1, Source: src.Addr, FDE: fde})
	pctx, pcancel := context.WithCancel(context.Background())
	s.stop = pcancel
	go func() { s.done <- s.prop.Run(pctx) }()
	return s, nil
}

// GTID returns the GTID of the i-th synthetic transaction (from 1).
func (s *Synthetic) GTID(i int) string {
	return fmt.Sprintf("%s%d", s.flav.GTIDPrefix(SyntheticSourceUUID, 1, ""), i)
}

// Append stores n transactions of about size bytes each and waits until
// they are stored. It returns their GTIDs.
func (s *Synthetic) Append(ctx context.Context, n, size int) ([]string, error) {
	var gtids []string
	var tickets []*logger.Ticket
	for i := 0; i < n; i++ {
		g := s.GTID(s.next)
		raw, end := binlogtest.Txn(s.flav, g, 1, s.pos, size)
		s.next++
		s.pos = end
		tk, err := s.prop.Enqueue(ctx, logger.Txn{GTID: g, SourceFile: "src-bin.000001", SourceEnd: uint64(end), Events: raw})
		if err != nil {
			return gtids, err
		}
		tickets = append(tickets, tk)
		gtids = append(gtids, g)
	}
	for _, tk := range tickets {
		if err := tk.Wait(ctx); err != nil {
			return gtids, err
		}
	}
	return gtids, nil
}

// MustAppend is Append failing the test on error.
func (s *Synthetic) MustAppend(t testing.TB, n, size int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := s.Append(ctx, n, size)
	if err != nil {
		t.Fatalf("dumptest: synthetic append: %v", err)
	}
	return g
}

// Close stops the proposer.
func (s *Synthetic) Close() {
	if s.stop != nil {
		s.stop()
		<-s.done
		s.stop = nil
	}
}
