package binlogsvr

import (
	"context"
	"net/http"

	"github.com/spf13/pflag"
)

// Failover: the source's lease, fencing, promotion, switchover, rejoin (issue 6).
// The hooks below are called by config.go, server.go and admin.go.

// registerFailoverFlags registers the failover flags.
func (c *Config) registerFailoverFlags(fs *pflag.FlagSet) {}

// validateFailover checks the failover flags.
func (c *Config) validateFailover() error { return nil }

// initFailover is called by New once the log node is started.
func (s *Server) initFailover() error { return nil }

// failoverRoutes registers the failover endpoints of the admin API.
func (s *Server) failoverRoutes(mux *http.ServeMux) {}

// runFailover runs the failover goroutines until ctx ends.
func (s *Server) runFailover(ctx context.Context) {}
