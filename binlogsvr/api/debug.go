package api

// BenchResult is the JSON of POST /debug/bench (a binlogsvr built with
// -tags binlogsvr_debug).
type BenchResult struct {
	Concurrency int     `json:"concurrency"`
	Size        int     `json:"size"`
	Txns        int     `json:"txns"`
	Seconds     float64 `json:"seconds"`
	TPS         float64 `json:"tps"`
	MBps        float64 `json:"mb_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
}
