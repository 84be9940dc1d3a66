// Package layers states the module's dependency rule and checks it: every
// import points down a layer, never up or sideways, so that each layer
// can be read, tested and changed knowing only the ones below it.
//
// The layers, bottom to top (Layers holds the table):
//
//  0. binlogsvr/api: the admin API's JSON types; the standard library only.
//     Every package may import it (the daemon packages alias its types),
//     and binlogctl imports nothing else of the daemon.
//  1. logger and its subpackages: the replicated log, the binlog format,
//     the MySQL TLS and PKI helpers, and the log's own test harnesses.
//  2. semisync, dump, learner, failover: each imports only layers 0 and 1,
//     never one another.
//  3. binlogsvr and binlogsvr/cmd/binlogsvr: the daemon's wiring.
//  4. tools/...: binlogctl, the sandbox, the fleet harness, the test
//     harnesses that start servers (tools/dumptest), the benchmarks
//     (tools/bench/...).
//
// Within one unit (logger and its subpackages, binlogsvr and its command,
// tools/...) imports are free. Tests (_test.go files) may import anything:
// a test of dump may start servers with tools/dumptest.
//
// The test (layers_test.go) reads the real import graph with go list and
// fails on any edge Check refuses, on a package the table does not place,
// and when binlogctl or binlogsvr/api link dragonboat or Pebble or the
// release binlogsvr links binlogtest (the synthetic transactions of the
// debug endpoints, built only with -tags binlogsvr_debug).
//
// The caller's duties: a new package gets a row in Layers (the test fails
// until it has one); an edge the rule refuses is fixed by moving code down
// (to the lower package, or to binlogsvr/api for a type of the admin API),
// never by loosening the table.
//
// unitsuite_test.go guards make unit (the Makefile's UNIT_PKGS): no package
// in it may link, or have its tests import, the harnesses that start real
// servers (tools/sandbox, tools/fleet), except through an edge listed with
// its reason in harnessVia.
package layers
