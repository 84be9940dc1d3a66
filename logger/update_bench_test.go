package logger

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

// BenchmarkUpdate measures the state machine's CPU per transaction on
// every member: raft entries of 16 transactions of 200 bytes, applied by
// SM.Update in batches of 4 entries, as under 64 concurrent proposers.
// Run: go test -run XXX -bench Update -benchmem ./logger/
func BenchmarkUpdate(b *testing.B) {
	for _, flavor := range []string{"mariadb", "mysql"} {
		b.Run(flavor, func(b *testing.B) {
			f, err := binlog.FlavorByName(flavor)
			if err != nil {
				b.Fatal(err)
			}
			s := newSM(1, 1, "/sm", vfs.NewMem(), slog.New(slog.DiscardHandler))
			if _, err := s.Open(nil); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			src := Source{Addr: "src1:3306", ServerID: 1, Flavor: flavor, UUID: "3e11fa47-71ca-11e1-9e33-c80aa9429562"}
			gtid := func(n int) string {
				if flavor == "mysql" {
					return fmt.Sprintf("%s:%d", src.UUID, n)
				}
				return fmt.Sprintf("0-1-%d", n)
			}
			index := uint64(0)
			update := func(cmds ...Command) {
				ents := make([]sm.Entry, len(cmds))
				for i, c := range cmds {
					index++
					ents[i] = sm.Entry{Index: index, Cmd: Encode(c)}
				}
				out, err := s.Update(ents)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range out {
					if Code(e.Result.Value) != ResultOK {
						b.Fatalf("entry %d: %v %s", e.Index, Code(e.Result.Value), e.Result.Data)
					}
				}
			}
			update(&SetSource{ExpectedEpoch: 0, NewEpoch: 1, Source: src})
			fde := binlogtest.FDE(f, 1)
			const perEntry, perUpdate = 16, 4
			pos, n, last := uint32(4), 0, ""
			mk := func() *Append {
				a := &Append{Epoch: 1, Source: src.Addr, Predecessor: last, FDE: fde}
				for i := 0; i < perEntry; i++ {
					n++
					raw, end := binlogtest.Txn(f, gtid(n), 1, pos, 200)
					pos = end
					a.Txns = append(a.Txns, Txn{GTID: gtid(n), SourceFile: "src-bin.000001", SourceEnd: uint64(end), Events: raw})
				}
				last = gtid(n)
				return a
			}
			// The entries are built before the clock runs.
			batches := make([][]Command, b.N/(perEntry*perUpdate)+1)
			for i := range batches {
				for j := 0; j < perUpdate; j++ {
					batches[i] = append(batches[i], mk())
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, cmds := range batches {
				update(cmds...)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(len(batches)*perEntry*perUpdate), "ns/txn")
		})
	}
}
