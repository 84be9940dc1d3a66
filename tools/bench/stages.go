package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/binlogsvr/binlogsvr/semisync"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
)

// The ACK path by stage: the leader's binlogsvr_semisync_ack_stage_seconds
// (and the total, binlogsvr_semisync_ack_latency_seconds) read before and
// after a row, so each row shows its own stages.

// histo is one cumulative histogram as scraped.
type histo struct {
	count  uint64
	sum    float64
	bounds []float64
	cum    []uint64
}

// stageSnap is every stage's histogram ("total" for the ACK latency).
type stageSnap map[string]histo

func scrapeStages(ctx context.Context, f *fleet.Fleet, id uint64) (stageSnap, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL(id, "/metrics"), nil)
	resp, err := f.HTTP().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics on member %d: %s", id, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := stageSnap{}
	if mf := mfs["binlogsvr_semisync_ack_stage_seconds"]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" {
					out[l.GetValue()] = histoOf(m.GetHistogram())
				}
			}
		}
	}
	if mf := mfs["binlogsvr_semisync_ack_latency_seconds"]; mf != nil && len(mf.GetMetric()) == 1 {
		out["total"] = histoOf(mf.GetMetric()[0].GetHistogram())
	}
	return out, nil
}

func histoOf(h *dto.Histogram) histo {
	o := histo{count: h.GetSampleCount(), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		o.bounds = append(o.bounds, b.GetUpperBound())
		o.cum = append(o.cum, b.GetCumulativeCount())
	}
	return o
}

// stageStat is one stage over a row: its mean and median.
type stageStat struct {
	n         uint64
	mean, p50 time.Duration
}

// since returns each stage's stats between b (earlier) and a.
func (a stageSnap) since(b stageSnap) map[string]stageStat {
	out := map[string]stageStat{}
	for k, h := range a {
		o := b[k]
		n := h.count - o.count
		if n == 0 || len(h.cum) != len(o.cum) && len(o.cum) != 0 {
			continue
		}
		st := stageStat{n: n, mean: time.Duration((h.sum - o.sum) / float64(n) * float64(time.Second))}
		// NB: the median within its bucket, by linear interpolation.
		half := float64(n) / 2
		lo, prev := 0.0, uint64(0)
		for i, c := range h.cum {
			if len(o.cum) != 0 {
				c -= o.cum[i]
			}
			if float64(c) >= half {
				frac := 0.0
				if c > prev {
					frac = (half - float64(prev)) / float64(c-prev)
				}
				st.p50 = time.Duration((lo + frac*(h.bounds[i]-lo)) * float64(time.Second))
				break
			}
			lo, prev = h.bounds[i], c
		}
		out[k] = st
	}
	return out
}

// stageTable renders the rows' stages: mean / p50 in ms.
func stageTable(rows []string, stats map[string]map[string]stageStat) string {
	if len(stats) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("The fleet's ACK path by stage, measured inside its leader (binlogsvr_semisync_ack_stage_seconds): mean / p50 in ms per ACK. cut: the transaction's last event received → queued for the log; queue: → its raft entry proposed (linger, entries in flight); commit: → committed on a quorum (the leader's and a follower's raft log fsync'd, two network hops); apply: → applied on the leader and its result back; handoff: → the acker saw it; ack: → the ACK written to the source. The stages add up to total.\n\n")
	sb.WriteString("| workload/threads | ACKs |")
	for _, s := range semisync.AckStages {
		sb.WriteString(" " + s + " |")
	}
	sb.WriteString(" total |\n|---|---|")
	for range semisync.AckStages {
		sb.WriteString("---|")
	}
	sb.WriteString("---|\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
	for _, r := range rows {
		st, ok := stats[r]
		if !ok {
			continue
		}
		fmt.Fprintf(&sb, "| %s | %d |", r, st["total"].n)
		for _, s := range append(append([]string(nil), semisync.AckStages...), "total") {
			fmt.Fprintf(&sb, " %s / %s |", ms(st[s].mean), ms(st[s].p50))
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// fdatasyncP50 measures this disk as the raft log uses it: n appends of
// 4 KiB to a file in dir, each followed by fdatasync; it returns the
// median and the 99th percentile.
func fdatasyncP50(dir string, n int) (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp(dir, "fdatasync-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	ds := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[n/2], ds[n*99/100], nil
}

// fdatasyncLine is the disk's fdatasync latency, measured in the run, for
// the ACK path's target (its ACK within fdatasync p50 + 0.3 ms).
func fdatasyncLine(dir string) string {
	p50, p99, err := fdatasyncP50(filepath.Clean(dir), 500)
	if err != nil {
		return fmt.Sprintf("fdatasync on this disk: not measured (%v).\n", err)
	}
	return fmt.Sprintf("fdatasync on this disk, measured in the same run (500 appends of 4 KiB, each followed by fdatasync, in the fleet's data directory's file system): p50 %.3f ms, p99 %.3f ms.\n",
		float64(p50)/float64(time.Millisecond), float64(p99)/float64(time.Millisecond))
}
