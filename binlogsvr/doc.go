// Package binlogsvr is the daemon: its configuration (pflag flags, secrets
// from the environment or files), the wiring of the log member and the
// ingest/serving parts, and the admin HTTP API (/status, /metrics,
// /healthz). The main function lives in binlogsvr/cmd/binlogsvr.
//
// The caller's duties: build a Config (DefaultConfig, RegisterFlags, parse,
// LoadSecrets), call New, then Run with a context cancelled on SIGTERM; Run
// returns after a clean shutdown.
//
// The admin API's JSON types live in binlogsvr/api (a leaf that clients
// such as binlogctl import without the daemon). The debug endpoints
// (debug.go: /debug/append and /debug/bench, which write synthetic
// transactions into the log, and the rest of /debug/) are compiled only
// with -tags binlogsvr_debug, for tests and benchmarks (make build-debug,
// tools/fleet); the release build refuses --debug-api.
package binlogsvr
