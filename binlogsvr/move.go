package binlogsvr

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger/catalog"
)

// Moving one of a source's loggers from a host to another, online
// (binlogctl sources move): the catalog records the move and each step
// once done in the source's shard, so that whichever host leads the shard
// next resumes it (docs/MULTISOURCE.md):
//
//  1. begun: the host leading the shard adds To's replica as a learner;
//  2. learner: To's host starts it (Join) and it catches up (by snapshot
//     if the log was compacted); once it is caught up the leader promotes
//     it (the learner package refuses a member that is not);
//  3. promoted: the leader removes From's replica (moving the leadership
//     first if it is From's);
//  4. removed: the catalog ends the move: To replaces From among the
//     loggers, From's host stops the source and deletes its data.

// handleMoveSource starts a move (POST /sources/{name}/move).
func (s *Server) handleMoveSource(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	from, err1 := strconv.ParseUint(strings.TrimSpace(req.FormValue("from")), 10, 64)
	to, err2 := strconv.ParseUint(strings.TrimSpace(req.FormValue("to")), 10, 64)
	if err1 != nil || err2 != nil || from == 0 || to == 0 {
		writeError(w, http.StatusBadRequest, "from and to must be host ids (positive integers)")
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	st := s.catalogFor(ctx, w)
	if st == nil {
		return
	}
	if _, ok := st.Hosts[to]; !ok {
		writeError(w, http.StatusConflict, "host %d has not registered with the catalog: start binlogsvr on it with --catalog-members", to)
		return
	}
	c := catalog.Command{Op: catalog.OpMoveBegin, Name: name, From: from, To: to, ToDump: strings.TrimSpace(req.FormValue("dump_addr"))}
	res, ok := s.proposeFor(ctx, w, c.At(st.Version), "the catalog refused the move")
	if !ok {
		return
	}
	s.answerChange(w, name, res.Version, fmt.Sprintf("moving source %s's logger from host %d to host %d (replica %d): the leader adds it as a learner, promotes it once caught up, then removes host %d; binlogctl sources shows the step",
		name, from, to, res.ReplicaID, from))
}

// driveMoves does the next step of the move of every source whose shard
// this host leads (each reconcile round).
func (s *Server) driveMoves(ctx context.Context, st *catalog.State) {
	s.hs.mu.Lock()
	var mine []*hostedSource
	for _, hs := range s.hs.running {
		if cs := st.Source(hs.src.cfg.Name); cs != nil && cs.Move != nil && hs.src.node.IsLeader() {
			mine = append(mine, hs)
		}
	}
	s.hs.mu.Unlock()
	for _, hs := range mine {
		name := hs.src.cfg.Name
		err := s.moveStep(ctx, hs.src, st, st.Source(name))
		s.hs.mu.Lock()
		if err != nil {
			s.hs.moveErr[name] = err.Error()
		} else {
			delete(s.hs.moveErr, name)
		}
		s.hs.mu.Unlock()
		if err != nil {
			s.log.Info("the move of a source's logger waits", "source", name, "from", st.Source(name).Move.From,
				"to", st.Source(name).Move.To, "step", st.Source(name).Move.Step, "why", err)
		}
	}
}

// moveStep does what the move's recorded step calls for, then records
// the next step in the catalog. Each action is checked against the
// shard's membership first, so a step done but not recorded (a leader
// lost in between) is recorded, not done twice.
func (s *Server) moveStep(ctx context.Context, src *source, st *catalog.State, cs *catalog.Source) error {
	m := cs.Move
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	members, err := src.node.Membership(mctx)
	cancel()
	if err != nil {
		return fmt.Errorf("reading the shard's membership: %v", err)
	}
	by := fmt.Sprintf("the move of source %s from host %d to host %d (binlogctl sources move)", cs.Name, m.From, m.To)
	_, toLearner := members.Learners[m.ToReplica]
	_, toLogger := members.Loggers[m.ToReplica]
	fromReplica := cs.Loggers[m.From]
	_, fromIn := members.Loggers[fromReplica]
	var next catalog.MoveStep
	switch m.Step {
	case catalog.MoveBegun:
		if !toLearner && !toLogger {
			hi, ok := st.Hosts[m.To]
			if !ok {
				return fmt.Errorf("host %d has not registered with the catalog", m.To)
			}
			if _, err := s.apply(ctx, src, learner.Change{Op: learner.OpAddLearner, ID: m.ToReplica, Addr: hi.RaftAddr, AdminAddr: hi.AdminAddr, By: by}); err != nil {
				return fmt.Errorf("adding host %d's replica %d as a learner: %v", m.To, m.ToReplica, err)
			}
		}
		next = catalog.MoveLearner
	case catalog.MoveLearner:
		if !toLogger {
			if _, err := s.apply(ctx, src, learner.Change{Op: learner.OpPromote, ID: m.ToReplica, By: by}); err != nil {
				return fmt.Errorf("promoting host %d's replica %d (it must catch up first): %v", m.To, m.ToReplica, err)
			}
		}
		next = catalog.MovePromoted
	case catalog.MovePromoted:
		if fromIn {
			if _, err := s.apply(ctx, src, learner.Change{Op: learner.OpRemove, ID: fromReplica, By: by}); err != nil {
				return fmt.Errorf("removing host %d's replica %d: %v", m.From, fromReplica, err)
			}
		}
		next = catalog.MoveRemoved
	case catalog.MoveRemoved:
		return s.proposeMove(ctx, catalog.Command{Op: catalog.OpMoveEnd, Name: cs.Name})
	default:
		return fmt.Errorf("unknown move step %q", m.Step)
	}
	return s.proposeMove(ctx, catalog.Command{Op: catalog.OpMoveStep, Name: cs.Name, Step: next})
}

func (s *Server) apply(ctx context.Context, src *source, c learner.Change) (learner.Outcome, error) {
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return src.mem.Apply(actx, c)
}

func (s *Server) proposeMove(ctx context.Context, c catalog.Command) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := s.hs.cat.Propose(pctx, c)
	switch {
	case err != nil:
		return fmt.Errorf("recording %s %s in the catalog: %v", c.Op, c.Step, err)
	case !res.OK():
		return fmt.Errorf("the catalog refused %s %s: %s", c.Op, c.Step, res)
	}
	s.log.Info("the move of a source's logger went on", "source", c.Name, "recorded", string(c.Op)+" "+string(c.Step))
	return nil
}

// moveInfo is a source's move for GET /sources.
func (s *Server) moveInfo(cs *catalog.Source) *api.SourceMove {
	if cs.Move == nil {
		return nil
	}
	mv := &api.SourceMove{From: cs.Move.From, To: cs.Move.To, Step: string(cs.Move.Step)}
	s.hs.mu.Lock()
	mv.Error = s.hs.moveErr[cs.Name]
	s.hs.mu.Unlock()
	return mv
}

// handleSourcesHistory is the fleet's audit trail (GET /sources/history).
func (s *Server) handleSourcesHistory(w http.ResponseWriter, _ *http.Request) {
	st := s.hs.cat.Local()
	out := slices.Clone(st.Audit)
	if out == nil {
		out = []api.AuditRecord{}
	}
	writeJSON(w, http.StatusOK, out)
}

// auditFleet records a fleet-wide call in the catalog's trail.
func (s *Server) auditFleet(req *http.Request, c caller, code int) {
	rec := api.AuditRecord{Time: time.Now().UTC(), Host: s.cfg.Log.ReplicaID, Call: req.Method + " " + redactedURI(req),
		By: c.String(), Role: c.role, Status: code}
	if req.Method == http.MethodPost && len(req.PostForm) > 0 {
		// NB: a form in the body (binlogctl's) says what was added or
		// moved: the fields these routes take, and of the source's own flags
		// their names only (the trail is readable with the read role, and an
		// operator may mistype a secret into any field).
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(req.PostForm)) {
			v := strings.Join(req.PostForm[k], ",")
			switch k {
			case "name", "source", "hosts", "loggers", "learners", "dump_addr", "from", "to", "id", "raft_addr", "admin_addr":
			case "failover", "retention":
				var names []string
				for _, l := range req.PostForm[k] {
					for _, line := range strings.Split(l, "\n") {
						if n, _, _ := strings.Cut(strings.TrimSpace(line), "="); n != "" {
							names = append(names, n)
						}
					}
				}
				v = strings.Join(names, ",")
			default:
				v = "(not recorded)"
			}
			if len(v) > 256 {
				v = v[:256] + "..."
			}
			parts = append(parts, k+"="+v)
		}
		rec.Message = strings.Join(parts, " ")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := s.hs.cat.Propose(ctx, catalog.Command{Op: catalog.OpAudit, Audit: &rec})
	if err != nil || !res.OK() {
		s.log.Warn("writing the admin call to the fleet's audit trail", "err", err, "result", res.String(), "call", rec.Call)
	}
}
