package binlogsvr

import (
	"context"
	"net/http"

	"github.com/spf13/pflag"
)

// Membership: learners, roles, weights, retention holds (issue 5).
// The hooks below are called by config.go, server.go and admin.go.

// registerMembersFlags registers the membership flags.
func (c *Config) registerMembersFlags(fs *pflag.FlagSet) {}

// validateMembers checks the membership flags.
func (c *Config) validateMembers() error { return nil }

// initMembers is called by New once the log node is started.
func (s *Server) initMembers() error { return nil }

// membersRoutes registers the membership endpoints of the admin API.
func (s *Server) membersRoutes(mux *http.ServeMux) {}

// runMembers runs the membership goroutines until ctx ends.
func (s *Server) runMembers(ctx context.Context) {}
