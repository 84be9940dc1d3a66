package binlogsvr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/semisync"
)

// Failover: the source's lease, fencing, promotion, switchover, rejoin.
// The policy and the steps are in failover/; this file wires them to the
// daemon's flags, admin API and goroutines.

// failoverConfig is Config.Failover's type (an alias, so that config.go
// needs no import of its own).
type failoverConfig = failover.Config

// failoverState is the daemon's failover part.
type failoverState struct {
	mgr *failover.Manager
}

// registerFailoverFlags registers the failover flags.
func (c *Config) registerFailoverFlags(fs *pflag.FlagSet) {
	c.defaultFailover()
	c.Failover.RegisterFlags(fs)
}

// validateFailover checks the failover flags.
func (c *Config) validateFailover() error {
	c.defaultFailover()
	return c.Failover.Validate()
}

func (c *Config) defaultFailover() {
	if c.Failover.Lease == 0 {
		cands, tls, creds := c.Failover.Candidates, c.Failover.TLS, c.Failover.CredentialsFile
		c.Failover = failover.DefaultConfig()
		c.Failover.Candidates, c.Failover.TLS, c.Failover.CredentialsFile = cands, tls, creds
	}
}

// initFailover is called by New once the log node is started.
func (src *source) initFailover() error {
	fc := src.cfg.Failover
	if fc.AdminPassword == "" {
		p, err := secret(os.Getenv(failover.EnvAdminPassword), fc.AdminPasswordFile, "--failover-admin-password-file")
		if err != nil {
			return err
		}
		fc.AdminPassword = p
	}
	fleetAddr := fc.FleetAddr
	if fleetAddr == "" && src.dump != nil {
		fleetAddr = src.dump.Addr()
	}
	mgr, err := failover.New(fc, failover.Deps{
		Log:           failover.NodeLog(src.node),
		Connect:       failover.SQLConnector(semisync.Dialer(fc.TLS)),
		ConnectSource: failover.SQLConnector(semisync.Dialer(src.cfg.Ingest.TLS)),
		SourceCred:    failover.Credentials{User: src.cfg.SourceUser, Password: src.cfg.SourcePassword},
		FleetAddr:     fleetAddr,
		FleetCred:     failover.Credentials{User: src.cfg.DumpUser, Password: src.cfg.DumpPassword},
		Ingest: func() failover.IngestView {
			st := src.ing.Status()
			return failover.IngestView{Streaming: st.State == semisync.StateStreaming, Source: st.Source, LastAck: st.LastAckTime,
				LastEvent: st.LastEventTime, LastError: st.LastError}
		},
		AskPeers: src.askPeers, // vantage.go
		Logger:   src.log,
	})
	if err != nil {
		return err
	}
	src.fo = &failoverState{mgr: mgr}
	// NB: read from the log, so every member reports it, leader or not.
	src.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "binlogsvr_failover_pending_fences",
		Help: "Old sources whose fence (read_only, client sessions ended) did not complete and that the leader retries until they answer.",
	}, func() float64 {
		l, err := mgr.PendingFences()
		if err != nil {
			return 0
		}
		return float64(len(l))
	}))
	return nil
}

// runFailover runs the failover goroutines until ctx ends.
func (src *source) runFailover(ctx context.Context) { _ = src.fo.mgr.Run(ctx) }

// failoverRoutes registers the failover endpoints of the admin API. Any
// member answers: a member that does not lead forwards to the leader.
func (src *source) failoverRoutes(mux *http.ServeMux) {
	h := func(pattern string, f http.HandlerFunc) { mux.HandleFunc(pattern, src.onLeader(f)) }
	src.vantageRoutes(mux) // vantage.go: answered by every member itself
	h("GET /failover/status", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusOK, src.fo.mgr.Status())
	})
	h("GET /failover/history", func(w http.ResponseWriter, req *http.Request) {
		rs, err := src.fo.mgr.History()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, rs)
	})
	h("GET /failover/candidates", func(w http.ResponseWriter, req *http.Request) {
		cs, err := src.fo.mgr.Candidates(req.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		for i := range cs {
			cs[i].Candidate = cs[i].Candidate.Redacted()
		}
		writeJSON(w, http.StatusOK, cs)
	})
	h("POST /failover/candidates", func(w http.ResponseWriter, req *http.Request) {
		var c failover.Candidate
		if req.Header.Get("Content-Type") == "application/json" {
			if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&c); err != nil {
				writeError(w, http.StatusBadRequest, "candidate JSON: %v", err)
				return
			}
		} else {
			c.Addr = strings.TrimSpace(req.FormValue("addr"))
			c.User, c.Password, c.Credential = req.FormValue("user"), req.FormValue("password"), req.FormValue("credential")
			c.Priority = atoiDefault(req.FormValue("priority"), 0)
			c.NeverPromote = formBool(req, "never_promote")
		}
		if _, err := failover.ParseCandidate(c.Addr); err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		if err := src.fo.mgr.PutCandidate(req.Context(), c); err != nil {
			writeError(w, failoverErrorCode(err), "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, c.Redacted())
	})
	h("DELETE /failover/candidates", func(w http.ResponseWriter, req *http.Request) {
		addr := strings.TrimSpace(req.FormValue("addr"))
		if addr == "" {
			writeError(w, http.StatusBadRequest, "addr is required")
			return
		}
		if err := src.fo.mgr.RemoveCandidate(req.Context(), addr); err != nil {
			writeError(w, http.StatusServiceUnavailable, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"removed": addr})
	})
	op := func(kind string) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			r := failover.Request{Kind: kind, To: strings.TrimSpace(req.FormValue("to")), Force: formBool(req, "force"),
				Reason: "requested through the admin API"}
			if kind == failover.KindSwitchover && r.To == "" {
				writeError(w, http.StatusBadRequest, "to (the replica to promote) is required")
				return
			}
			ctx, cancel := context.WithTimeout(req.Context(), queryDuration(req, "timeout", 5*time.Minute))
			defer cancel()
			o, err := src.fo.mgr.Do(ctx, r)
			if err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(failoverErrorCode(err))
				_ = json.NewEncoder(w).Encode(struct {
					Error     string              `json:"error"`
					Operation *failover.Operation `json:"operation,omitempty"`
				}{err.Error(), o})
				return
			}
			writeJSON(w, http.StatusOK, o)
		}
	}
	h("POST /failover/switchover", op(failover.KindSwitchover))
	h("POST /failover/failover", op(failover.KindFailover))
	h("POST /failover/forget-fence", func(w http.ResponseWriter, req *http.Request) {
		addr := strings.TrimSpace(req.FormValue("addr"))
		if addr == "" {
			writeError(w, http.StatusBadRequest, "addr is required")
			return
		}
		p, err := src.fo.mgr.ForgetFence(req.Context(), addr)
		if err != nil {
			writeError(w, failoverErrorCode(err), "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	h("GET /failover/rejoin-check", func(w http.ResponseWriter, req *http.Request) {
		rep, err := src.fo.mgr.RejoinCheck(req.Context(), strings.TrimSpace(req.FormValue("server")))
		if err != nil {
			writeError(w, failoverErrorCode(err), "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
	h("POST /failover/rejoin", func(w http.ResponseWriter, req *http.Request) {
		rep, err := src.fo.mgr.Rejoin(req.Context(), strings.TrimSpace(req.FormValue("server")))
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(failoverErrorCode(err))
			_ = json.NewEncoder(w).Encode(struct {
				Error string `json:"error"`
				failover.RejoinReport
			}{err.Error(), rep})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
}

// onLeader runs f on the leader: a member that does not lead forwards the
// request to the leader's admin API.
func (src *source) onLeader(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if src.node.IsLeader() || req.Header.Get("X-Binlogsvr-Forwarded") != "" {
			f(w, req)
			return
		}
		id, ok := src.node.LeaderID()
		r := src.node.Reader()
		if !ok || r == nil {
			writeError(w, http.StatusServiceUnavailable, "no leader known: the group has no quorum or is electing")
			return
		}
		v, found, err := r.Meta(fmt.Sprintf(metaAdminAddr, id))
		if err != nil || !found {
			writeError(w, http.StatusServiceUnavailable, "the leader (member %d) has not registered its admin address yet", id)
			return
		}
		u, err := url.Parse(src.peerURL(string(v), ""))
		if err != nil {
			writeError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		p := httputil.NewSingleHostReverseProxy(u)
		p.Transport = src.srv.members.Transport // NB: TLS with this member's certificate (nil: plain)
		p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, http.StatusBadGateway, "forwarding to the leader (member %d at %s): %v", id, v, err)
		}
		req.Header.Set("X-Binlogsvr-Forwarded", strconv.FormatUint(src.cfg.Log.ReplicaID, 10))
		markForwarded(req) // auth.go: the leader authorizes and audits the caller
		p.ServeHTTP(w, req)
	}
}

func failoverErrorCode(err error) int {
	switch {
	case errors.Is(err, failover.ErrNotLeader):
		return http.StatusServiceUnavailable
	case errors.Is(err, failover.ErrUnknownServer), errors.Is(err, failover.ErrBadCandidate):
		return http.StatusBadRequest
	case errors.Is(err, failover.ErrNoPendingFence):
		return http.StatusNotFound
	case errors.Is(err, failover.ErrBusy), errors.Is(err, failover.ErrErrant), errors.Is(err, failover.ErrVetoed),
		errors.Is(err, failover.ErrNoCandidate), errors.Is(err, failover.ErrNotCaughtUp):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
