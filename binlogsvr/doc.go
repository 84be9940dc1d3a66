// Package binlogsvr is the daemon: its configuration (pflag flags, secrets
// from the environment or files), the wiring of the log member and the
// ingest/serving parts, and the admin HTTP API (/status, /metrics,
// /healthz). The main function lives in binlogsvr/cmd/binlogsvr.
//
// The caller's duties: build a Config (DefaultConfig, RegisterFlags, parse,
// LoadSecrets), call New, then Run with a context cancelled on SIGTERM; Run
// returns after a clean shutdown.
package binlogsvr
