// Package binlogsvr is the daemon: its configuration (pflag flags, secrets
// from the environment or files), the wiring of the log member and the
// ingest/serving parts, and the admin HTTP API (/status, /metrics,
// /healthz). The main function lives in binlogsvr/cmd/binlogsvr.
//
// The daemon (Server, server.go) owns the admin listener, its TLS and
// tokens, the HTTP clients to the other members and the metrics registry;
// its source (source.go) owns one log: the logger.Node of its raft shard
// and the ingest, dump server, membership and failover over it, with the
// admin routes about that log. A one-source daemon (--source,
// --members) runs one; a host of several sources (--catalog-members,
// multi.go) runs the catalog's replica and a source for each shard the
// catalog places on it, and serves GET/POST/DELETE /sources and each
// source's routes under /sources/NAME (sources.go; docs/MULTISOURCE.md).
//
// Files: config.go (Config, flags, secrets), server.go (New, Run),
// source.go (a source's parts and goroutines, the seeding of the log's
// first source), multi.go (a host of several sources: the catalog, the
// reconcile loop), sources.go (the /sources routes and the dispatch of a
// request to its source), admin.go (routes, status, health, metrics, binlogs), auth.go (TLS, tokens, roles: routeRoles), members.go and
// failover.go (learner's and failover's routes and goroutines), vantage.go
// (GET /failover/probe-source), disk.go (the exit on a full disk or a
// newer log encoding), debug.go / nodebug.go (the debug endpoints, or
// their absence).
//
// Invariants:
//
//  1. Run owns every goroutine of the member (the admin server, and
//     through source.Run the ingest, dump server, membership manager,
//     failover manager, the seed and registration loops) and joins them
//     before it closes the log node.
//  2. Every admin route needs a role (routeRoles; a route missing there
//     needs operate), except GET /healthz and, with --metrics-open,
//     GET /metrics. Every call that needs operate (but /debug/ ones) is
//     recorded in the audit trail with the caller's name (auditAdmin).
//  3. A member whose disk is full exits with ExitDiskFull (75), one that
//     meets a newer log encoding with ExitNewerEncoding (76), one removed
//     from the group with ExitRemoved (78); each says why in one line.
//
// The caller's duties: build a Config (DefaultConfig, RegisterFlags, parse,
// LoadSecrets), set Log.Disk.OnFull (ExitOnDiskFull) and
// Log.OnNewerEncoding (ExitOnNewerEncoding), call New, then Run with a
// context cancelled on SIGTERM; Run returns after a clean shutdown, or the
// error that ended the member (learner.ErrRemoved: exit ExitRemoved).
//
// The admin API's JSON types live in binlogsvr/api (a leaf that clients
// such as binlogctl import without the daemon). The debug endpoints
// (debug.go: /debug/append and /debug/bench, which write synthetic
// transactions into the log, and the rest of /debug/) are compiled only
// with -tags binlogsvr_debug, for tests and benchmarks (make build-debug,
// tools/fleet); the release build refuses --debug-api.
package binlogsvr
