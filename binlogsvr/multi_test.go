package binlogsvr

import (
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// TestSourceFlags: a source's own failover and retention flags go over
// the host's; a source may not set a host's flags (hooks, files).
func TestSourceFlags(t *testing.T) {
	base := DefaultConfig()
	base.defaultFailover()
	base.Failover.Candidates = []string{"db9:3306"}
	for _, x := range []struct {
		lines []string
		check func(failoverConfig) string
		err   string
	}{
		{nil, func(c failoverConfig) string {
			if c.Lease != base.Failover.Lease || len(c.Candidates) != 1 {
				return "the host's own"
			}
			return ""
		}, ""},
		{[]string{"--failover-lease=7s"}, func(c failoverConfig) string {
			if c.Lease != 7*time.Second || len(c.Candidates) != 1 || c.Candidates[0] != "db9:3306" {
				return "lease 7s, the host's candidates"
			}
			return ""
		}, ""},
		{[]string{"--failover-candidate=db1:3306", "--failover-candidate=db2:3306"}, func(c failoverConfig) string {
			if strings.Join(c.Candidates, ",") != "db1:3306,db2:3306" {
				return "its own candidates only"
			}
			return ""
		}, ""},
		{[]string{"--failover-pre-hook=/bin/true"}, nil, "is a host's flag"},
		{[]string{"--failover-credentials-file=/etc/shadow"}, nil, "is a host's flag"},
		{[]string{"--failover-lease=soon"}, nil, "invalid argument"},
	} {
		c, err := sourceFailover(base.Failover, x.lines)
		switch {
		case x.err != "":
			if err == nil || !strings.Contains(err.Error(), x.err) {
				t.Errorf("%q: %v; want an error with %q", x.lines, err, x.err)
			}
		case err != nil:
			t.Errorf("%q: %v", x.lines, err)
		default:
			if want := x.check(c); want != "" {
				t.Errorf("%q: got %+v; want %s", x.lines, c, want)
			}
		}
	}

	host := logger.Retention{MaxFiles: 100, MaxAge: time.Hour}
	r, err := sourceRetention(host, []string{"--retain-files=5", "--retain-bytes=1048576"})
	if err != nil || r.MaxFiles != 5 || r.MaxBytes != 1<<20 || r.MaxAge != time.Hour {
		t.Errorf("retention over the host's: %+v, %v", r, err)
	}
	for _, bad := range [][]string{{"--retain-files=-1"}, {"--retain-age=forever"}, {"--retain-everything=1"}} {
		if _, err := sourceRetention(host, bad); err == nil {
			t.Errorf("retention %q accepted", bad)
		}
	}
}
