package semisync

import (
	"errors"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

func TestStartGTIDs(t *testing.T) {
	const u = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	my, ma := binlog.MySQL(), binlog.MariaDB()
	for _, tc := range []struct {
		name                    string
		flav                    binlog.Flavor
		mode, executed, purged  string
		want, wantErr, wantText string
	}{
		{name: "mysql current", flav: my, mode: StartCurrent, executed: u + ":1-10", purged: u + ":1-3", want: u + ":1-10"},
		{name: "mysql oldest", flav: my, mode: StartOldest, executed: u + ":1-10", purged: u + ":1-3", want: u + ":1-3"},
		{name: "mysql oldest nothing purged", flav: my, mode: StartOldest, executed: u + ":1-10", purged: "", want: ""},
		{name: "mysql set between", flav: my, mode: u + ":1-5", executed: u + ":1-10", purged: u + ":1-3", want: u + ":1-5"},
		{name: "mysql set at purged", flav: my, mode: u + ":1-3", executed: u + ":1-10", purged: u + ":1-3", want: u + ":1-3"},
		{name: "mysql set beyond executed", flav: my, mode: u + ":1-11", executed: u + ":1-10", purged: u + ":1-3",
			wantErr: "holds GTIDs the source has not executed", wantText: "--source-start oldest"},
		{name: "mysql set before purged", flav: my, mode: u + ":1-2", executed: u + ":1-10", purged: u + ":1-3",
			wantErr: "lacks GTIDs the source has purged", wantText: u + ":1-3"},
		{name: "mysql set of another flavor", flav: my, mode: "0-1-5", executed: u + ":1-10", wantErr: "is not a mysql GTID set"},
		{name: "mariadb current", flav: ma, mode: StartCurrent, executed: "0-1-10", purged: "0-1-3", want: "0-1-10"},
		{name: "mariadb oldest", flav: ma, mode: StartOldest, executed: "0-1-10", purged: "0-1-3", want: "0-1-3"},
		{name: "mariadb oldest fresh server", flav: ma, mode: StartOldest, executed: "0-1-10", purged: "", want: ""},
		{name: "mariadb set between", flav: ma, mode: "0-1-7", executed: "0-1-10", purged: "0-1-3", want: "0-1-7"},
		{name: "mariadb set beyond", flav: ma, mode: "0-1-11", executed: "0-1-10", purged: "0-1-3", wantErr: "has not executed"},
		{name: "mariadb set before purged", flav: ma, mode: "0-1-2", executed: "0-1-10", purged: "0-1-3", wantErr: "lacks GTIDs the source has purged"},
		{name: "mariadb empty set after a purge", flav: ma, mode: "1-1-1", executed: "0-1-10,1-1-1", purged: "0-1-3", wantErr: "lacks GTIDs the source has purged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StartGTIDs(tc.flav, tc.mode, tc.executed, tc.purged)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadStart) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.wantText) {
					t.Fatalf("got %q, %v; want ErrBadStart naming %q and %q", got, err, tc.wantErr, tc.wantText)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCheckStartSyntax(t *testing.T) {
	for _, ok := range []string{"oldest", "current", "0-1-5", "0-1-5,1-2-3", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"} {
		if err := CheckStartSyntax(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "newest", "0-1", "3e11fa47:1-5"} {
		if err := CheckStartSyntax(bad); !errors.Is(err, ErrBadStart) {
			t.Errorf("%q: %v, want ErrBadStart", bad, err)
		}
	}
}
