package binlogsvr

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger/catalog"
)

// The fleet's hosts (GET/POST /hosts): the catalog's voters are the hosts
// --catalog-members names; any other host is added with binlogctl hosts
// add, then started with the same --catalog-members, and keeps a learner
// copy of the catalog, so that a fleet has as many hosts as it needs
// while its catalog's quorum stays at 3 or 5.

// handleHosts lists the fleet's hosts.
func (s *Server) handleHosts(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 3*time.Second)
	defer cancel()
	st := s.hs.cat.Local()
	voters, learners := map[uint64]string{}, map[uint64]string{}
	if m, err := s.hs.cat.Shard().NodeHost().SyncGetShardMembership(ctx, catalog.ShardID); err == nil {
		voters, learners = m.Nodes, m.NonVotings
	} else {
		maps.Copy(voters, s.cfg.CatalogMembers) // NB: no quorum: the flag's voters
	}
	load := st.Load()
	ids := map[uint64]bool{}
	for id := range st.Hosts {
		ids[id] = true
	}
	for id := range voters {
		ids[id] = true
	}
	for id := range learners {
		ids[id] = true
	}
	out := []api.HostInfo{}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		hi := api.HostInfo{ID: id, RaftAddr: st.Hosts[id].RaftAddr, AdminAddr: st.Hosts[id].AdminAddr, Shards: load[id]}
		switch {
		case voters[id] != "":
			hi.Catalog, hi.RaftAddr = "voter", voters[id]
		case learners[id] != "":
			hi.Catalog, hi.RaftAddr = "learner", learners[id]
		}
		out = append(out, hi)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAddHost adds a host outside the catalog's voters (binlogctl hosts
// add): to the catalog shard as a non-voting replica, and to the
// catalog's hosts, so that sources can be placed on it once it runs.
func (s *Server) handleAddHost(w http.ResponseWriter, req *http.Request) {
	id, err := strconv.ParseUint(strings.TrimSpace(req.FormValue("id")), 10, 64)
	if err != nil || id == 0 || id > catalog.MaxHost {
		writeError(w, http.StatusBadRequest, "id must be a host id in 1..%d", catalog.MaxHost)
		return
	}
	raft, admin := strings.TrimSpace(req.FormValue("raft_addr")), strings.TrimSpace(req.FormValue("admin_addr"))
	for name, a := range map[string]string{"raft_addr": raft, "admin_addr": admin} {
		if h, _, err := net.SplitHostPort(a); err != nil || h == "" {
			writeError(w, http.StatusBadRequest, "%s %q: want HOST:PORT (the address the host's --%s names)", name, a, strings.ReplaceAll(name, "_", "-"))
			return
		}
	}
	if addr, voter := s.cfg.CatalogMembers[id]; voter {
		writeError(w, http.StatusConflict, "host %d holds the catalog (--catalog-members names it at %s): it needs no adding", id, addr)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 15*time.Second)
	defer cancel()
	// NB: checked before the host joins the catalog shard, which no route
	// undoes: a raft address another host has, or another address for a
	// host the catalog knows.
	st := s.catalogFor(ctx, w)
	if st == nil {
		return
	}
	for h, hi := range st.Hosts {
		switch {
		case h == id && hi.RaftAddr != raft:
			writeError(w, http.StatusConflict, "host %d is in the catalog at raft address %s, not %s: a host keeps its raft address; give a new host a new id", id, hi.RaftAddr, raft)
			return
		case h != id && hi.RaftAddr == raft:
			writeError(w, http.StatusConflict, "raft address %s is host %d's: check --raft-addr", raft, h)
			return
		}
	}
	if err := s.hs.cat.AddHost(ctx, id, raft); err != nil {
		writeError(w, http.StatusConflict, "%v", err)
		return
	}
	res, err := s.hs.cat.Propose(ctx, catalog.Command{Op: catalog.OpHost, Host: id, RaftAddr: raft, AdminAddr: admin})
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "host %d is in the catalog shard, but recording its addresses failed (it records them itself when it starts): %v", id, err)
		return
	case !res.OK():
		writeError(w, catalogErrorCode(res.Code), "host %d is in the catalog shard, but the catalog refused its addresses: %s", id, res)
		return
	}
	var voters []string
	for _, h := range slices.Sorted(maps.Keys(s.cfg.CatalogMembers)) {
		voters = append(voters, fmt.Sprintf("%d=%s", h, s.cfg.CatalogMembers[h]))
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": fmt.Sprintf("host %d added; start binlogsvr on it with --id %d --raft-addr %s --admin-addr %s --catalog-members %s",
		id, id, raft, admin, strings.Join(voters, ","))})
}
