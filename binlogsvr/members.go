package binlogsvr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger"
)

// Membership: learners, roles, weights, retention holds. The
// policy and the dragonboat calls are in learner/; this file wires them to
// the daemon's flags, admin API and goroutines.

// registerMembersFlags registers the membership flags.
func (c *Config) registerMembersFlags(fs *pflag.FlagSet) {
	c.defaultMembers()
	c.Members.RegisterFlags(fs)
}

// validateMembers checks the membership flags.
func (c *Config) validateMembers() error {
	c.defaultMembers()
	return c.Members.Validate()
}

func (c *Config) defaultMembers() {
	if c.Members == (learner.Config{}) {
		c.Members = learner.DefaultConfig()
	}
}

// initMembers is called by New once the log node is started.
func (src *source) initMembers() error {
	mg, err := learner.New(src.cfg.Members, learner.Deps{Node: src.node, Fetch: src.fetchReport, Replicas: src.dumpReplicas,
		DumpAddr: src.cfg.DumpAddr, Notify: src.notifyRemoved, Log: src.log, Registry: src.reg})
	if err != nil {
		return err
	}
	src.mem = mg
	return nil
}

// dumpReplicas lists this member's dump clients and the files they read.
func (src *source) dumpReplicas() []learner.Replica {
	if src.dump == nil {
		return nil
	}
	var out []learner.Replica
	for _, c := range src.dump.Clients() {
		if c.File == "" || (!c.Dumping && !c.Registered) {
			continue
		}
		n, err := logger.ParseFileName(c.File)
		if err != nil {
			continue
		}
		out = append(out, learner.Replica{ServerID: c.ServerID, UUID: c.UUID, Remote: c.Remote, Registered: c.Registered, File: n, Pos: c.Pos})
	}
	return out
}

// notifyRemoved tells the member at addr that it was removed (POST
// /members/self/removed, with this member's certificate).
func (src *source) notifyRemoved(ctx context.Context, addr string, r learner.Removal) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, src.peerURL(addr, "/members/self/removed"), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := src.srv.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("unreachable: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// handleRemoved is how the leader tells this member it was removed from
// the group; only another member (its certificate) may.
func (src *source) handleRemoved(w http.ResponseWriter, req *http.Request) {
	if ri := infoOf(req); !src.cfg.Insecure && (ri == nil || ri.caller.kind != "member") {
		writeError(w, http.StatusForbidden, "only another member of the group (its certificate) tells a member it was removed")
		return
	}
	var r learner.Removal
	if err := json.NewDecoder(req.Body).Decode(&r); err != nil {
		writeError(w, http.StatusBadRequest, "the body is not a removal record: %v", err)
		return
	}
	if err := src.mem.MarkRemoved(r); err != nil {
		writeError(w, membersErrorCode(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": r.Message()})
}

func (src *source) fetchReport(ctx context.Context, addr string, files bool) (learner.Report, error) {
	var r learner.Report
	path := "/members/self"
	if files {
		path += "?files=1"
	}
	err := src.srv.getJSON(ctx, src.peerURL(addr, path), &r)
	return r, err
}

// MembersStatus is the JSON of GET /members.
type MembersStatus = api.MembersStatus

// membersRoutes registers the membership endpoints of the admin API.
func (src *source) membersRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /members", src.handleMembers)
	mux.HandleFunc("GET /members/self", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusOK, src.mem.SelfReport(req.URL.Query().Get("files") != ""))
	})
	mux.HandleFunc("POST /members/self/removed", src.handleRemoved)
	mux.HandleFunc("POST /members", func(w http.ResponseWriter, req *http.Request) {
		id, err := formID(req, "id")
		if err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		src.change(w, req, learner.Change{Op: learner.OpAddLearner, ID: id, Addr: strings.TrimSpace(req.FormValue("addr")),
			AdminAddr: strings.TrimSpace(req.FormValue("admin_addr"))})
	})
	mux.HandleFunc("POST /members/{id}/promote", src.memberOp(learner.OpPromote))
	mux.HandleFunc("POST /members/{id}/demote", src.memberOp(learner.OpDemote))
	mux.HandleFunc("DELETE /members/{id}", src.memberOp(learner.OpRemove))
	mux.HandleFunc("POST /members/{id}/weight", src.memberOp(learner.OpWeight))
	// NB: on the leader: a learner (and a follower whose request raft
	// drops) cannot start a transfer; the member asked forwards it.
	mux.HandleFunc("POST /transfer-leader", src.onLeader(func(w http.ResponseWriter, req *http.Request) {
		id, err := formID(req, "to")
		if err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		src.change(w, req, learner.Change{Op: learner.OpTransferLeader, ID: id})
	}))
	mux.HandleFunc("POST /purge", src.handlePurge)
	// NB: on the leader, as the source's appends are: the rotation lands
	// between two of its transactions.
	mux.HandleFunc("POST /rotate", src.onLeader(src.handleRotate))
}

// handleRotate closes the log's open file on every member and opens the
// next (binlogctl rotate), as FLUSH BINARY LOGS does on a server.
func (src *source) handleRotate(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	res, err := src.node.Propose(ctx, &logger.Rotate{})
	switch {
	case errors.Is(err, logger.ErrEncodingNotReady):
		writeError(w, http.StatusConflict, "%v", err)
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "proposing the rotation (is there a quorum?): %v", err)
		return
	case !res.Code.Stored():
		writeError(w, http.StatusConflict, "the log refused the rotation: %s: %s", res.Code, res.Message)
		return
	}
	out := api.Rotation{File: logger.FileName(max(res.File, 1)), Message: res.Message}
	if closed, ok := strings.CutPrefix(res.Message, logger.RotatedPrefix); ok {
		out.Rotated, out.Closed = true, closed
		out.Message = fmt.Sprintf("closed %s on every member; the next transaction goes to %s", closed, out.File)
		src.log.Info("rotated the log's file", "closed", closed, "open", out.File)
	}
	writeJSON(w, http.StatusOK, out)
}

func (src *source) handleMembers(w http.ResponseWriter, req *http.Request) {
	v := src.mem.View()
	if req.URL.Query().Get("refresh") != "" || v.At.IsZero() {
		// NB: within the clients' timeouts (binlogctl 10s, tests 5s), so that
		// they get this answer, not a timeout of their own, when the group
		// cannot answer; a change or a purge waits for the group longer.
		ctx, cancel := context.WithTimeout(req.Context(), 4*time.Second)
		defer cancel()
		var err error
		if v, err = src.mem.Refresh(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, "reading the group's membership (is there a quorum?): %v", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, MembersStatus{AskedMember: src.cfg.Log.ReplicaID, View: v})
}

// memberOp handles the operations on /members/{id}.
func (src *source) memberOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		id, err := parseID(req.PathValue("id"), "member id")
		if err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		c := learner.Change{Op: op, ID: id}
		switch op {
		case learner.OpDemote:
			if v := req.FormValue("new_id"); v != "" {
				if c.NewID, err = parseID(v, "new_id"); err != nil {
					writeError(w, http.StatusBadRequest, "%v", err)
					return
				}
			}
			c.Addr = strings.TrimSpace(req.FormValue("addr"))
			if c.Addr != "" {
				if err := learner.ValidateAddr(c.Addr); err != nil {
					writeError(w, http.StatusBadRequest, "%v", err)
					return
				}
			}
		case learner.OpWeight:
			v := strings.TrimSpace(req.FormValue("weight"))
			if c.Weight, err = strconv.Atoi(v); err != nil {
				writeError(w, http.StatusBadRequest, "weight %q is not an integer", v)
				return
			}
		}
		src.change(w, req, c)
	}
}

func (src *source) change(w http.ResponseWriter, req *http.Request, c learner.Change) {
	if ri := infoOf(req); ri != nil && ri.caller.kind != "" {
		c.By = fmt.Sprintf("%s via member %d", ri.caller, src.cfg.Log.ReplicaID)
	} else {
		c.By = fmt.Sprintf("an admin call to member %d", src.cfg.Log.ReplicaID)
	}
	out, err := src.mem.Apply(req.Context(), c)
	if err != nil {
		writeError(w, membersErrorCode(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (src *source) handlePurge(w http.ResponseWriter, req *http.Request) {
	to := strings.TrimSpace(req.FormValue("to"))
	n, err := logger.ParseFileName(to)
	if err != nil {
		writeError(w, http.StatusBadRequest, "to: %v", err)
		return
	}
	force, dry := formBool(req, "force"), formBool(req, "dry_run")
	p, err := src.mem.Purge(req.Context(), n, force, dry)
	if err != nil {
		code := membersErrorCode(err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(struct {
			Error string `json:"error"`
			learner.PurgePlan
		}{err.Error(), p})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// membersErrorCode maps the learner package's errors to HTTP statuses.
func membersErrorCode(err error) int {
	switch {
	case errors.Is(err, learner.ErrBadInput):
		return http.StatusBadRequest
	case errors.Is(err, learner.ErrUnknownMember):
		return http.StatusNotFound
	case errors.Is(err, learner.ErrUnsafe), errors.Is(err, learner.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, learner.ErrRetry), errors.Is(err, learner.ErrStopped):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func formID(req *http.Request, name string) (uint64, error) {
	return parseID(req.FormValue(name), name)
}

func parseID(v, name string) (uint64, error) {
	v = strings.TrimSpace(v)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s %q is not a positive integer", name, v)
	}
	return n, nil
}

func formBool(req *http.Request, name string) bool {
	switch strings.ToLower(strings.TrimSpace(req.FormValue(name))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// runMembers runs the membership goroutines until ctx ends. Once this
// member was removed from the group it says so (log, /status, /healthz),
// leaves the marker that keeps a restart on this data directory from
// starting, lingers removedLinger for monitoring to see why, and returns
// the *learner.RemovedError the daemon exits with (ExitRemoved).
//
// On a host of several sources the marker goes in the shard's own
// directory (removedDir), never the host's: the host and its other
// sources go on; the reconcile loop does not start that replica again,
// and deletes its data once the catalog no longer places it there.
func (src *source) runMembers(ctx context.Context) error {
	err := src.mem.Run(ctx)
	var re *learner.RemovedError
	if !errors.As(err, &re) {
		return nil
	}
	dir := src.removedDir()
	if src.srv.hs != nil {
		src.log.Error(re.Error() + " (this source's replica on this host only; the host goes on)")
		if werr := learner.WriteRemovedMarker(dir, re.Removal); werr != nil {
			src.log.Warn("cannot leave the removal marker in the shard's directory", "dir", dir, "err", werr)
		}
		return err
	}
	src.log.Error(re.Error(), "exit_code", ExitRemoved, "exit_in", removedLinger)
	if werr := learner.WriteRemovedMarker(dir, re.Removal); werr != nil {
		src.log.Warn("cannot leave the removal marker in the data directory; a restart will not be refused", "dir", dir, "err", werr)
	}
	select {
	case <-ctx.Done():
	case <-time.After(removedLinger):
	}
	return err
}

// removedDir is where the marker of this replica's removal goes: the data
// directory of a one-source daemon, the shard's own directory on a host
// of several sources.
func (src *source) removedDir() string {
	if src.srv.hs == nil {
		return src.cfg.Log.DataDir
	}
	return filepath.Join(src.cfg.Log.DataDir, "binlog", fmt.Sprintf("shard-%d-replica-%d", src.cfg.Log.ShardID, src.cfg.Log.ReplicaID))
}

// ExitRemoved is the daemon's exit code once its member was removed from
// the group, and when it is started on the data directory of a removed
// member (sysexits' EX_CONFIG: restarting it does not help; systemd:
// RestartPreventExitStatus=78).
const ExitRemoved = 78

// removedLinger is how long a removed member keeps answering /status and
// /healthz (503, "removed from the group") before it exits.
const removedLinger = 10 * time.Second

// removedMessage is this member's removal, "" while it is a member.
func (src *source) removedMessage() string {
	if src.mem == nil {
		return ""
	}
	if r, ok := src.mem.Removed(); ok {
		return r.Message()
	}
	return ""
}
