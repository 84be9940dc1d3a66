package dump

import (
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// facts is what the answers to probe SQL are computed from: the fleet's
// identity and a snapshot of the log. Pure data, so answers are testable.
type facts struct {
	Flavor     binlog.Flavor
	Version    string // what VERSION() returns
	ServerID   uint32
	ServerUUID string
	Port       int
	Checksum   binlog.ChecksumAlg
	GTIDs      string // the log's GTID state
	Purged     string // the GTID state at the start of the oldest file held
	File       string // the open file
	Pos        uint64 // its size
	// SourceVars are the source's own values of the variables that
	// describe its data, as the ingest recorded them in the log; Overrides
	// (dump.Config.Variables) win over them.
	SourceVars map[string]string
	Overrides  map[string]string
	// SemiSync: the dump server offers semi-sync (Config.SemiSync).
	SemiSync bool
}

// flavor is the log's flavor; MariaDB's answers before it has one.
func (f *facts) flavor() binlog.Flavor {
	if f.Flavor == nil {
		return binlog.MariaDB()
	}
	return f.Flavor
}

// mysqlColumns reports whether SHOW statements carry MySQL's extra columns.
func (f *facts) mysqlColumns() bool { return f.flavor().ShowsMySQLColumns() }

// sysVars returns the global variables the fleet answers, by lower-case
// name. Values that describe the data are the source's. The source-side
// semi-sync switch is listed only when the fleet offers semi-sync: a
// MariaDB replica takes any row as "semi-sync on".
func (f *facts) sysVars() map[string]string {
	v := map[string]string{
		"server_id":                strconv.FormatUint(uint64(f.ServerID), 10),
		"server_uuid":              f.ServerUUID,
		"version":                  f.Version,
		"version_comment":          "binlogsvr",
		"log_bin":                  "ON",
		"binlog_format":            "ROW",
		"binlog_row_image":         "FULL",
		"binlog_checksum":          f.Checksum.String(),
		"master_verify_checksum":   "OFF",
		"server_id_bits":           "32",
		"max_allowed_packet":       "1073741824",
		"read_only":                "ON",
		"lower_case_table_names":   "0",
		"character_set_server":     "utf8mb4",
		"collation_server":         "utf8mb4_general_ci",
		"character_set_client":     "utf8mb4",
		"character_set_connection": "utf8mb4",
		"character_set_results":    "utf8mb4",
		"time_zone":                "SYSTEM",
		"system_time_zone":         "UTC",
		"sql_mode":                 "",
		"autocommit":               "ON",
		"wait_timeout":             "28800",
		"interactive_timeout":      "28800",
		"net_write_timeout":        "60",
		"net_read_timeout":         "30",
		"tx_isolation":             "REPEATABLE-READ",
		"transaction_isolation":    "REPEATABLE-READ",
		"port":                     strconv.Itoa(f.Port),
		"hostname":                 "binlogsvr",
	}
	for k, val := range f.flavor().GTIDVars(f.GTIDs, f.Purged, f.domain()) {
		v[k] = val
	}
	for k, val := range f.SourceVars {
		v[strings.ToLower(k)] = val
	}
	for k := range v {
		if isSemiSyncVar(k) {
			delete(v, k) // NB: the source's own semi-sync state is not the fleet's
		}
	}
	if f.SemiSync {
		v[f.flavor().SemiSyncSourceVar()] = "ON"
	}
	for k, val := range f.Overrides {
		v[strings.ToLower(k)] = val
	}
	return v
}

// domain is the MariaDB domain of the log's newest GTID (0 if none).
func (f *facts) domain() uint32 {
	parts := strings.Split(f.GTIDs, ",")
	d, _, _ := strings.Cut(parts[len(parts)-1], "-")
	n, _ := strconv.ParseUint(d, 10, 32)
	return uint32(n)
}

// sysVar looks up one global variable.
func (f *facts) sysVar(name string) (string, bool) {
	v, ok := f.sysVars()[strings.ToLower(name)]
	return v, ok
}

// isSemiSyncVar reports whether name is a semi-sync variable.
func isSemiSyncVar(name string) bool {
	return strings.HasPrefix(strings.ToLower(name), "rpl_semi_sync_")
}

// semiSyncVar answers SELECT @@rpl_semi_sync_*. With semi-sync offered,
// the source-side switch (rpl_semi_sync_source_enabled, or the older and
// MariaDB rpl_semi_sync_master_enabled) is 1 and the other semi-sync
// variables 0. Without, every one is unknown (ok false: error 1193), as
// on a server without the plugin: a MySQL replica with the plugin then
// runs asynchronously, while any value would make it expect the header.
func (f *facts) semiSyncVar(name string) (string, bool) {
	if !f.SemiSync {
		return "", false
	}
	if n := strings.ToLower(name); n == "rpl_semi_sync_source_enabled" || n == "rpl_semi_sync_master_enabled" {
		return "1", true
	}
	return "0", true
}

// matchLike reports whether s matches the SQL LIKE pattern p
// (case-insensitive; % and _ wildcards; backslash escapes).
func matchLike(p, s string) bool {
	var g strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%':
			g.WriteByte('*')
		case '_':
			g.WriteByte('?')
		case '\\':
			if i+1 < len(p) {
				i++
				g.WriteByte('\\')
				g.WriteByte(p[i])
			}
		case '*', '?', '[', ']':
			g.WriteByte('\\')
			g.WriteByte(c)
		default:
			g.WriteByte(c)
		}
	}
	ok, _ := path.Match(strings.ToLower(g.String()), strings.ToLower(s))
	return ok
}

// showVariables answers SHOW [GLOBAL|SESSION] VARIABLES with an optional
// LIKE pattern or WHERE Variable_name IN (...)/= filter.
func (f *facts) showVariables(like string, in []string, hasFilter bool) [][]any {
	vars := f.sysVars()
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	var rows [][]any
	for _, n := range names {
		switch {
		case like != "" && !matchLike(like, n):
			continue
		case in != nil && !containsFold(in, n):
			continue
		case hasFilter && like == "" && in == nil:
			continue
		}
		rows = append(rows, []any{n, vars[n]})
	}
	return rows
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
