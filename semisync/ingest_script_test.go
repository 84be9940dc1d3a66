package semisync

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

// TestIngestScripts drives the ingest's pure core through testdata/ingest/:
// the cutter (the source's events in, whole transactions out) and the ACK
// rule (outcomes in stream order in, ACK positions out). Regenerate the
// expected output with -rewrite and read the diff.
//
//	source flavor=mariadb|mysql     a new session: cutter and ACK rule reset
//	fde                             the source's format description event
//	rotate file=NAME [pos=N]        a rotate event: the events that follow are in NAME
//	heartbeat                       a heartbeat: ignored
//	txn gtid=G [size=N] [ack=true|false] [ack-at=K] [take=K]
//	                                one whole transaction as the source writes it, its events fed
//	                                one by one; the source asks for an ACK on its last event
//	                                (ack=true, the default) or on event K (ack-at); take=K feeds only
//	                                its first K events
//	stored gtid=G                   the log reports G stored
//	rejected gtid=G                 the log reports G not stored
//	take                            the acker has nothing more ready: the ACK it sends, if any
func TestIngestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/ingest", func(t *testing.T, path string) {
		var (
			flav binlog.Flavor
			c    *cutter
			core ackCore
			pos  uint32
			cuts map[string]*cut
			dead error // the session ended
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key, def string) string {
				if a, ok := d.Arg(key); ok {
					return strings.Join(a.Vals, ",")
				}
				return def
			}
			num := func(key string, def int) int {
				n, err := strconv.Atoi(arg(key, strconv.Itoa(def)))
				if err != nil {
					t.Fatalf("%s: %s: %v", d.Pos, key, err)
				}
				return n
			}
			feed := func(ev []byte, needAck bool) string {
				out, err := c.feed(ev, needAck)
				switch {
				case err != nil:
					dead = err
					return "error: " + err.Error() + "\n"
				case out == nil:
					return ""
				}
				cuts[out.txn.GTID] = out
				return fmt.Sprintf("cut %s: %d bytes, ends at %s:%d, ack %v, statements %d\n",
					out.txn.GTID, len(out.txn.Events), out.txn.SourceFile, out.txn.SourceEnd, out.needAck, out.statements)
			}
			if d.Cmd != "source" && c == nil {
				t.Fatalf("%s: no source yet", d.Pos)
			}
			switch d.Cmd {
			case "source":
				f, err := binlog.FlavorByName(arg("flavor", "mariadb"))
				if err != nil {
					t.Fatal(err)
				}
				flav, c, core, pos, cuts, dead = f, &cutter{flav: f, alg: binlog.ChecksumNone}, ackCore{}, 4, map[string]*cut{}, nil
				return ""
			case "fde":
				return feed(binlogtest.FDE(flav, 1), false)
			case "rotate":
				pos = uint32(num("pos", 4))
				return feed(binlog.RotateEvent(0, 1, 0, 0, arg("file", "src-bin.000001"), uint64(pos), c.alg), false)
			case "heartbeat":
				return feed(binlog.HeartbeatEvent(1, pos, c.file, c.alg), false)
			case "txn":
				raw, end := binlogtest.Txn(flav, arg("gtid", ""), 1, pos, num("size", 300))
				evs, err := binlog.SplitEvents(raw)
				if err != nil {
					t.Fatal(err)
				}
				ackAt := len(evs)
				if arg("ack", "true") != "true" {
					ackAt = 0
				}
				ackAt = num("ack-at", ackAt)
				take := num("take", len(evs))
				var sb strings.Builder
				for i, ev := range evs[:take] {
					sb.WriteString(feed(ev, i+1 == ackAt))
					if dead != nil {
						break
					}
				}
				if take == len(evs) {
					pos = end
				}
				return sb.String()
			case "stored", "rejected":
				g := arg("gtid", "")
				ct, ok := cuts[g]
				if !ok {
					t.Fatalf("%s: no transaction %s was cut", d.Pos, g)
				}
				var err error
				if d.Cmd == "rejected" {
					err = fmt.Errorf("the log rejected %s", g)
				}
				if err := core.outcome(ackItem{cut: ct}, err); err != nil {
					dead = err
					return "session ends, no ACK: " + err.Error() + "\n"
				}
				return ""
			case "take":
				a := core.take()
				if a == nil {
					return "no ACK\n"
				}
				return fmt.Sprintf("ACK %s:%d (%s)\n", a.cut.txn.SourceFile, a.cut.txn.SourceEnd, a.cut.txn.GTID)
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}
