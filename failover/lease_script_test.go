package failover

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestLeaseScripts drives the lease's pure core (Analyse, Decide, Explain)
// through the timelines in testdata/lease/ on a logical clock: times are
// seconds after t0, "-" is never. Commands change what the leader has
// observed; judge prints the verdict, the decision and the explanation at
// a moment. Regenerate the expected output with -rewrite and read the diff.
//
//	reset [lease=3s] [leader-since=S] [last-contact=S|-] [epoch=N] [source=ADDR]
//	contact at=S                  the source was heard at S
//	stall end=S length=DURATION   this member's latest stall
//	probes failed=S,S,...         failed probes' start times (replaces)
//	peers n=N                     other members the leader can ask
//	vantage asked=S [reached=ID,..] [unreached=ID,..] [errors=N]
//	op [kind=failover] step=STEP [from-epoch=N]   an operation in the log; "op" alone clears it
//	fenced [on=true|false]        the log's source is a fence
//	policy [auto=BOOL] [anti-flap=DUR] [last-failover=S|-] [vetoed-until=S|-] [unarmed=BOOL]
//	judge now=S
func TestLeaseScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/lease", func(t *testing.T, path string) {
		t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
		var o Observation
		var pol Policy
		at := func(v string) time.Time {
			if v == "-" {
				return time.Time{}
			}
			s, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("time %q: %v", v, err)
			}
			return t0.Add(time.Duration(s * float64(time.Second)))
		}
		reset := func() {
			o = Observation{Leader: true, LeaderSince: t0, Epoch: 7, Source: "src:3306", Lease: 3 * time.Second}
			pol = Policy{Auto: true, AntiFlap: 5 * time.Minute}
		}
		reset()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key string) (string, bool) {
				a, ok := d.Arg(key)
				return strings.Join(a.Vals, ","), ok
			}
			dur := func(v string) time.Duration {
				x, err := time.ParseDuration(v)
				if err != nil {
					t.Fatalf("%s: duration %q: %v", d.Pos, v, err)
				}
				return x
			}
			list := func(v string) []string {
				if v == "" {
					return nil
				}
				return strings.Split(v, ",")
			}
			ids := func(v string) []uint64 {
				var out []uint64
				for _, s := range list(v) {
					n, err := strconv.ParseUint(s, 10, 64)
					if err != nil {
						t.Fatalf("%s: id %q: %v", d.Pos, s, err)
					}
					out = append(out, n)
				}
				return out
			}
			switch d.Cmd {
			case "reset":
				reset()
				if v, ok := arg("lease"); ok {
					o.Lease = dur(v)
				}
				if v, ok := arg("leader-since"); ok {
					o.LeaderSince = at(v)
				}
				if v, ok := arg("last-contact"); ok {
					o.LastContact = at(v)
				}
				if v, ok := arg("epoch"); ok {
					n, _ := strconv.ParseUint(v, 10, 64)
					o.Epoch = n
				}
				if v, ok := arg("source"); ok {
					o.Source = v
				}
				return ""
			case "contact":
				v, _ := arg("at")
				o.LastContact = at(v)
				o.FailedProbes = nil // NB: the failures listed are those since the last answer
				return ""
			case "stall":
				end, _ := arg("end")
				length, _ := arg("length")
				o.StallEnd, o.Stall = at(end), dur(length)
				return ""
			case "probes":
				v, _ := arg("failed")
				o.FailedProbes = nil
				for _, s := range list(v) {
					o.FailedProbes = append(o.FailedProbes, at(s))
				}
				return ""
			case "peers":
				v, _ := arg("n")
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("%s: peers %q", d.Pos, v)
				}
				o.Peers = n
				return ""
			case "vantage":
				asked, _ := arg("asked")
				r, _ := arg("reached")
				u, _ := arg("unreached")
				vt := &Vantage{Asked: at(asked), Reached: ids(r), Unreached: ids(u)}
				if v, ok := arg("errors"); ok {
					n, _ := strconv.Atoi(v)
					for i := range n {
						vt.Errors = append(vt.Errors, fmt.Sprintf("member %d: unreachable", i+2))
					}
				}
				o.Vantage = vt
				return ""
			case "op":
				if len(d.CmdArgs) == 0 {
					o.Op = nil
					return ""
				}
				op := &Operation{Kind: KindFailover}
				if v, ok := arg("kind"); ok {
					op.Kind = v
				}
				op.Step, _ = arg("step")
				if v, ok := arg("from-epoch"); ok {
					op.FromEpoch, _ = strconv.ParseUint(v, 10, 64)
				}
				o.Op = op
				return ""
			case "fenced":
				o.Fenced = true
				if v, ok := arg("on"); ok {
					o.Fenced = v == "true"
				}
				return ""
			case "policy":
				if v, ok := arg("auto"); ok {
					pol.Auto = v == "true"
				}
				if v, ok := arg("anti-flap"); ok {
					pol.AntiFlap = dur(v)
				}
				if v, ok := arg("last-failover"); ok {
					pol.LastFailover = at(v)
				}
				if v, ok := arg("vetoed-until"); ok {
					pol.VetoedUntil = at(v)
				}
				if v, ok := arg("unarmed"); ok {
					pol.Unarmed = ""
					if v == "true" {
						pol.Unarmed = (&Config{}).unarmed()
					}
				}
				return ""
			case "judge":
				v, ok := arg("now")
				if !ok {
					t.Fatalf("%s: judge needs now=S", d.Pos)
				}
				o.Now = at(v)
				verdict := Analyse(o)
				dec := Decide(verdict, o.Now, pol)
				return fmt.Sprintf("verdict: %s\ndecision: %s: %s\nwhy: %s\nfresh failures: %d; lease until t0+%.2fs\n", verdict, dec.Action, dec.Reason,
					Explain(o, verdict), o.FreshFailures(), o.LeaseExpiry().Sub(t0).Seconds())
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}
