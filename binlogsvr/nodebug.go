//go:build !binlogsvr_debug

package binlogsvr

import "net/http"

// debugEndpoints: the release build has no debug endpoints (debug.go,
// built with -tags binlogsvr_debug): nothing in it can append synthetic
// transactions to the log, and --debug-api is refused.
const debugEndpoints = false

func (src *source) debugRoutes(*http.ServeMux) {}

func (s *Server) pprofRoutes(*http.ServeMux) {}
