package catalog

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// TestApplyScripts drives Apply through testdata/apply/. Regenerate the
// expected output with -rewrite and read the diff. Every command is also
// encoded and decoded before it applies (as a replica gets it), checked not
// to change the state it applied to, to bump the version exactly when
// applied, and the new state to survive a snapshot's encoding.
//
//	add name=N [source=ADDR] [loggers=(H,...)] [learners=(H,...)] [dump=(H/ADDR,...)] [failover=(F,...)] [retention=(F,...)] [cas=V]
//	                              (defaults: source db:3306, loggers 1,2,3)
//	remove name=N [cas=V]
//	drop name=N [cas=V]
//	move-begin name=N from=H to=H [dump=ADDR] [cas=V]
//	move-step name=N step=S [cas=V]
//	move-end name=N [abort] [cas=V]
//	host id=H [raft=ADDR] [admin=ADDR] [cas=V]
//	                              (defaults: raft 10.0.0.H:7000, admin 10.0.0.H:7070)
//	audit [call=CALL]             a fleet-wide call for the trail
//	started name=N host=H replica=R
//	                              host H bootstrapped replica R of N's shard
//	op op=OP [name=N]             a command of any op, e.g. an unknown one
//	show                          the state
//	on-host host=H                the shards host H runs (shard → replica)
func TestApplyScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/apply", func(t *testing.T, path string) {
		s := NewState()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			str := func(key, def string) string {
				if a, ok := d.Arg(key); ok {
					return strings.Join(a.Vals, ",")
				}
				return def
			}
			num := func(key string) uint64 {
				n, err := strconv.ParseUint(str(key, "0"), 10, 64)
				if err != nil {
					t.Fatalf("%s: %s: %v", d.Pos, key, err)
				}
				return n
			}
			hosts := func(key, def string) []uint64 {
				v := str(key, def)
				if v == "" {
					return nil
				}
				var out []uint64
				for _, f := range strings.Split(v, ",") {
					n, err := strconv.ParseUint(f, 10, 64)
					if err != nil {
						t.Fatalf("%s: %s: %v", d.Pos, key, err)
					}
					out = append(out, n)
				}
				return out
			}
			c := Command{Op: Op(d.Cmd), Name: str("name", "")}
			switch d.Cmd {
			case "show":
				return show(s)
			case "on-host":
				on := s.OnHost(num("host"))
				var parts []string
				for _, sh := range slices.Sorted(maps.Keys(on)) {
					parts = append(parts, fmt.Sprintf("%d:%d", sh, on[sh]))
				}
				if len(parts) == 0 {
					return "no shards\n"
				}
				return "shards " + strings.Join(parts, " ") + "\n"
			case "add":
				c.SourceAddr = str("source", "db:3306")
				c.Loggers, c.Learners = hosts("loggers", "1,2,3"), hosts("learners", "")
				if a, ok := d.Arg("dump"); ok {
					c.DumpAddrs = map[uint64]string{}
					for _, v := range a.Vals {
						h, addr, _ := strings.Cut(v, "/")
						n, err := strconv.ParseUint(h, 10, 64)
						if err != nil {
							t.Fatalf("%s: dump %q: %v", d.Pos, v, err)
						}
						c.DumpAddrs[n] = addr
					}
				}
				if a, ok := d.Arg("failover"); ok {
					c.Failover = a.Vals
				}
				if a, ok := d.Arg("retention"); ok {
					c.Retention = a.Vals
				}
			case "remove", "drop":
			case "audit":
				if call := str("call", ""); call != "" {
					c.Audit = &api.AuditRecord{Call: call, Host: 1, By: "token ops", Role: "operate", Status: 200}
				}
			case "started":
				c.Host, c.Replica = num("host"), num("replica")
			case "host":
				h := str("id", "0")
				c.Host = num("id")
				c.RaftAddr, c.AdminAddr = str("raft", "10.0.0."+h+":7000"), str("admin", "10.0.0."+h+":7070")
			case "move-begin":
				c.From, c.To, c.ToDump = num("from"), num("to"), str("dump", "")
			case "move-step":
				c.Step = MoveStep(str("step", ""))
			case "move-end":
				c.Abort = d.HasArg("abort")
			case "op":
				c.Op = Op(str("op", ""))
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			}
			if d.HasArg("cas") {
				c = c.At(num("cas"))
			}
			got, err := Decode(Encode(c))
			if err != nil || !reflect.DeepEqual(got, c) {
				t.Fatalf("%s: %+v encodes and decodes to %+v: %v", d.Pos, c, got, err)
			}
			before := snapshot(t, s)
			next, res := Apply(s, got)
			if after := snapshot(t, s); after != before {
				t.Fatalf("%s: Apply changed the state it was given:\n%s\n%s", d.Pos, before, after)
			}
			switch {
			case res.Code != OK && next != s:
				t.Fatalf("%s: refused (%s) but returned a new state", d.Pos, res)
			case next != s && c.Op != OpAudit && next.Version != s.Version+1:
				t.Fatalf("%s: applied at version %d, now %d", d.Pos, s.Version, next.Version)
			case res.Version != next.Version:
				t.Fatalf("%s: result at version %d, state at %d", d.Pos, res.Version, next.Version)
			}
			var back State
			if err := json.Unmarshal([]byte(snapshot(t, next)), &back); err != nil || snapshot(t, &back) != snapshot(t, next) {
				t.Fatalf("%s: the state does not survive its encoding: %v", d.Pos, err)
			}
			s = next
			out := res.String()
			if res.ShardID != 0 {
				out += fmt.Sprintf(" shard=%d", res.ShardID)
			}
			if res.ReplicaID != 0 {
				out += fmt.Sprintf(" replica=%d", res.ReplicaID)
			}
			return out + "\n"
		})
	})
}

func snapshot(t *testing.T, s *State) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// show prints the state, one source a line (and its move on the next).
func show(s *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version=%d next_shard=%d\n", s.Version, s.NextShard)
	for _, id := range slices.Sorted(maps.Keys(s.Hosts)) {
		fmt.Fprintf(&b, "host %d raft=%s admin=%s\n", id, s.Hosts[id].RaftAddr, s.Hosts[id].AdminAddr)
	}
	for _, a := range s.Audit {
		fmt.Fprintf(&b, "audit %s by %s: %d\n", a.Call, a.By, a.Status)
	}
	ids := func(m map[uint64]uint64) string {
		var parts []string
		for _, h := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%d:%d", h, m[h]))
		}
		return strings.Join(parts, ",")
	}
	for _, name := range s.Names() {
		src := s.Sources[name]
		fmt.Fprintf(&b, "%s shard=%d %s source=%s loggers=%s", name, src.ShardID, src.State, src.SourceAddr, ids(src.Loggers))
		if len(src.Learners) > 0 {
			fmt.Fprintf(&b, " learners=%s", ids(src.Learners))
		}
		if len(src.DumpAddrs) > 0 {
			var parts []string
			for _, h := range slices.Sorted(maps.Keys(src.DumpAddrs)) {
				parts = append(parts, fmt.Sprintf("%d/%s", h, src.DumpAddrs[h]))
			}
			fmt.Fprintf(&b, " dump=%s", strings.Join(parts, ","))
		}
		fmt.Fprintf(&b, " held=%s", ids(src.Held))
		if len(src.Started) > 0 {
			fmt.Fprintf(&b, " started=%s", ids(src.Started))
		}
		if len(src.Failover) > 0 {
			fmt.Fprintf(&b, " failover=%s", strings.Join(src.Failover, " "))
		}
		if len(src.Retention) > 0 {
			fmt.Fprintf(&b, " retention=%s", strings.Join(src.Retention, " "))
		}
		b.WriteString("\n")
		if m := src.Move; m != nil {
			fmt.Fprintf(&b, "  move %d->%d replica=%d step=%s", m.From, m.To, m.ToReplica, m.Step)
			if m.ToDump != "" {
				fmt.Fprintf(&b, " dump=%s", m.ToDump)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
