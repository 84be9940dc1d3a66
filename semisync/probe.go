package semisync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/binlogsvr/binlogsvr/logger"
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

// Dial connects to a MySQL or MariaDB server. MySQL 9.x servers offer only
// caching_sha2_password, whose first login over plain TCP needs TLS: on
// such an error Dial retries once over TLS (the server's own certificate is
// not verified; use a private network for replication traffic).
func Dial(ctx context.Context, addr, user, password string) (*client.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := connect(dctx, addr, user, password)
	if err == nil {
		return c, nil
	}
	if !strings.Contains(err.Error(), "sha2") && !strings.Contains(err.Error(), "secure connection") {
		return nil, err
	}
	c, err2 := connect(dctx, addr, user, password, func(c *client.Conn) error {
		c.SetTLSConfig(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // NB: see the doc comment
		return nil
	})
	if err2 != nil {
		return nil, fmt.Errorf("%v (and over TLS: %v)", err, err2)
	}
	return c, nil
}

// connect logs in with the whole login bounded by ctx's deadline. NB:
// go-mysql applies ctx to the TCP dial only; a server that accepts and then
// never speaks (a partitioned or blackholed path, a hung server) would
// block the handshake forever, and with it the lease probe and the ingest.
func connect(ctx context.Context, addr, user, password string, opts ...client.Option) (*client.Conn, error) {
	var nc net.Conn
	stop := func() bool { return true }
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		nc, stop = c, context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
		return c, nil
	}
	c, err := client.ConnectWithDialer(ctx, "", addr, user, password, "", dial, opts...)
	if !stop() && err == nil {
		c.Close()
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{}) // NB: the caller bounds what follows
	return c, nil
}

// Probe connects to the source with the replication account and checks
// that the fleet can replicate from it: binary logging on, ROW format, a
// known checksum, and (MySQL) GTID mode ON.
func Probe(ctx context.Context, addr, user, password string) (SourceInfo, error) {
	var info SourceInfo
	c, err := Dial(ctx, addr, user, password)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "1045") {
			hint = " (check --source-user and $BINLOGSVR_SOURCE_PASSWORD; the account needs REPLICATION SLAVE and REPLICATION CLIENT)"
		}
		return info, fmt.Errorf("semisync: connecting to source %s as %q: %w%s", addr, user, err, hint)
	}
	defer c.Close()
	one := func(q string) (string, error) {
		r, err := c.Execute(q)
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
	info.Source.Flavor = "mysql"
	if strings.Contains(strings.ToLower(info.Version), "mariadb") {
		info.Source.Flavor = "mariadb"
	}
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
	if info.Source.Flavor == "mysql" {
		if info.Source.UUID, err = one("SELECT @@GLOBAL.server_uuid"); err != nil {
			return info, err
		}
		if info.GTIDMode, err = one("SELECT @@GLOBAL.gtid_mode"); err != nil {
			return info, err
		}
		if !strings.EqualFold(info.GTIDMode, "ON") {
			return info, fmt.Errorf("%w: source %s has gtid_mode=%s: the fleet needs GTIDs; set gtid_mode=ON and enforce_gtid_consistency=ON", ErrSourceUnfit, addr, info.GTIDMode)
		}
		info.GTIDs, err = one("SELECT @@GLOBAL.gtid_executed")
	} else {
		info.GTIDs, err = one("SELECT @@GLOBAL.gtid_binlog_pos")
	}
	if err != nil {
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
