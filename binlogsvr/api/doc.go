// Package api holds the admin HTTP API's request and response types: the
// JSON that binlogsvr's admin endpoints write and that binlogctl (and any
// other client) reads. It is a leaf: it imports only the standard library.
//
// It lives under binlogsvr/ because the admin API is the daemon's, but it
// sits below every other package of the module: the packages that fill a
// part of a response (logger's Source, semisync's IngestStatus, dump's
// DumpClientStatus, learner's View and PurgePlan, failover's Operation and
// Candidate) declare their types as aliases of the ones here, so a
// response has one definition and no conversion. A client that imports only
// this package links neither dragonboat nor Pebble; a test of the module's
// layering (tools/layers) holds it to that.
//
// The caller's duties:
//
//  1. Decode a response into the type its endpoint names (GET /status:
//     Status; GET /members: MembersStatus; POST /purge: PurgePlan; ...).
//  2. Treat unknown fields as normal: a newer member may add fields; an
//     older one leaves new fields at their zero value.
//  3. Add a field here, never in the daemon package that fills it (those
//     are aliases); keep its JSON name stable once released.
package api
