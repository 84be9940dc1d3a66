package semisync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
)

// ErrSourceUnfit is wrapped by Probe errors that name a setting of the
// source to change; retrying without changing it will not help.
var ErrSourceUnfit = errors.New("semisync: source not usable")

// SourceInfo is what Probe learns about a source.
type SourceInfo struct {
	Source   logger.Source
	Version  string
	Format   string // binlog_format
	Checksum string // binlog_checksum
	GTIDMode string // MySQL gtid_mode ("" on MariaDB)
	GTIDs    string // the source's executed GTID state (gtid_executed / gtid_binlog_pos)
	// Vars are the source's values of DataVars it has (a variable one
	// flavor lacks is absent).
	Vars map[string]string
}

// DataVars are the source's global variables that describe its binlog's
// data; the fleet records them in the log (logger.MetaSourceVarPrefix) so
// that its dump servers answer what the source would: Canal, Debezium and
// Maxwell check binlog_row_image, and a row event's metadata and text
// depend on the others.
var DataVars = []string{"binlog_row_image", "binlog_row_metadata", "binlog_transaction_compression",
	"lower_case_table_names", "character_set_server", "collation_server", "time_zone", "system_time_zone",
	"explicit_defaults_for_timestamp", "default_storage_engine"}

// Dial connects to a MySQL or MariaDB server with MySQL's default TLS
// (PREFERRED: TLS when the server offers it). Tests and tools use it; the
// daemon's logins use DialTLS with the configured mode.
func Dial(ctx context.Context, addr, user, password string) (*client.Conn, error) {
	return DialTLS(ctx, addr, user, password, mysqltls.Config{})
}

// DialTLS connects with the TLS of tc, the whole login bounded by 10 s and
// ctx. The login refuses mysql_clear_password over plaintext
// (mysqltls.Connect). NB: MySQL 9.x servers offer only
// caching_sha2_password, whose first login over plain TCP fetches the
// server's RSA key: DISABLED toward them works, but TLS is better.
func DialTLS(ctx context.Context, addr, user, password string, tc mysqltls.Config) (*client.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return mysqltls.Connect(dctx, tc, addr, user, password)
}

// Dialer returns DialTLS with tc, for failover.SQLConnector.
func Dialer(tc mysqltls.Config) func(ctx context.Context, addr, user, password string) (*client.Conn, error) {
	return func(ctx context.Context, addr, user, password string) (*client.Conn, error) {
		return DialTLS(ctx, addr, user, password, tc)
	}
}

// execute runs one query on c. NB: go-mysql's client panics on some
// malformed answers (a bare OK, ERR or EOF byte, an empty packet): the
// source's bytes must not crash the daemon, so such a panic is returned as
// ErrMalformedPacket.
func execute(c *client.Conn, q string) (r *mysql.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("%w: the answer to %q: %v", ErrMalformedPacket, q, p)
		}
	}()
	return c.Execute(q)
}

// Probe connects to the source with the replication account and checks
// that the fleet can replicate from it: binary logging on, ROW format, a
// known checksum, and (MySQL) GTID mode ON. tc is --source-ssl-mode's.
func Probe(ctx context.Context, addr, user, password string, tc mysqltls.Config) (SourceInfo, error) {
	var info SourceInfo
	c, err := DialTLS(ctx, addr, user, password, tc)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "1045") {
			hint = " (check --source-user and $BINLOGSVR_SOURCE_PASSWORD; the account needs REPLICATION SLAVE and REPLICATION CLIENT)"
		}
		return info, fmt.Errorf("semisync: connecting to source %s as %q: %w%s", addr, user, err, hint)
	}
	defer c.Close()
	// NB: the login is bounded; the queries end with ctx.
	stop := context.AfterFunc(ctx, func() { _ = c.Conn.Conn.SetDeadline(time.Now()) })
	defer stop()
	one := func(q string) (string, error) {
		r, err := execute(c, q)
		if err != nil {
			return "", fmt.Errorf("semisync: source %s: %s: %w", addr, q, err)
		}
		defer r.Close()
		if r.RowNumber() == 0 {
			return "", nil
		}
		v, err := r.GetString(0, 0)
		return strings.Clone(v), err // NB: go-mysql's strings alias its read buffer
	}
	if info.Version, err = one("SELECT VERSION()"); err != nil {
		return info, err
	}
	info.Source.Addr = addr
	flav := binlog.FlavorOfVersion(info.Version)
	info.Source.Flavor = flav.Name()
	id, err := one("SELECT @@GLOBAL.server_id")
	if err != nil {
		return info, err
	}
	var sid uint64
	if _, err := fmt.Sscan(id, &sid); err != nil || sid == 0 || sid > 1<<32-1 {
		return info, fmt.Errorf("%w: source %s has server_id %q: set server_id to a unique non-zero value", ErrSourceUnfit, addr, id)
	}
	info.Source.ServerID = uint32(sid)
	logBin, err := one("SELECT @@GLOBAL.log_bin")
	if err != nil {
		return info, err
	}
	if logBin != "1" && !strings.EqualFold(logBin, "ON") {
		return info, fmt.Errorf("%w: source %s has binary logging off: start it with --log-bin", ErrSourceUnfit, addr)
	}
	if info.Format, err = one("SELECT @@GLOBAL.binlog_format"); err != nil {
		return info, err
	}
	if !strings.EqualFold(info.Format, "ROW") {
		return info, fmt.Errorf("%w: source %s has binlog_format=%s: set binlog_format=ROW (SET GLOBAL binlog_format='ROW' and in its config file)", ErrSourceUnfit, addr, info.Format)
	}
	if info.Checksum, err = one("SELECT @@GLOBAL.binlog_checksum"); err != nil {
		return info, err
	}
	if !strings.EqualFold(info.Checksum, "CRC32") && !strings.EqualFold(info.Checksum, "NONE") {
		return info, fmt.Errorf("%w: source %s has binlog_checksum=%s: set binlog_checksum=CRC32", ErrSourceUnfit, addr, info.Checksum)
	}
	if q := flav.ServerUUIDQuery(); q != "" {
		if info.Source.UUID, err = one(q); err != nil {
			return info, err
		}
	}
	if q := flav.GTIDModeQuery(); q != "" {
		if info.GTIDMode, err = one(q); err != nil {
			return info, err
		}
		if !strings.EqualFold(info.GTIDMode, "ON") {
			return info, fmt.Errorf("%w: source %s has gtid_mode=%s: the fleet needs GTIDs; set gtid_mode=ON and enforce_gtid_consistency=ON", ErrSourceUnfit, addr, info.GTIDMode)
		}
	}
	if info.GTIDs, err = one(flav.BinlogGTIDsQuery()); err != nil {
		return info, err
	}
	info.GTIDs = strings.ReplaceAll(info.GTIDs, "\n", "")
	info.Vars = map[string]string{}
	for _, name := range DataVars {
		// NB: an unknown variable is an error of this query only (the
		// other flavor's variable); the connection goes on.
		if v, err := one("SELECT @@GLOBAL." + name); err == nil {
			info.Vars[name] = v
		}
	}
	return info, nil
}
