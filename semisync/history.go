package semisync

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
)

// BinlogFile is one of the source's binlog files as SHOW BINARY LOGS lists
// it.
type BinlogFile struct {
	Name string
	Size uint64
}

// History is where the source's binlog begins and how large it is.
type History struct {
	// Files are the files the source holds, oldest first.
	Files []BinlogFile
	// Purged is the GTIDs the source no longer holds, in the flavor's text
	// (binlog.Flavor.PurgedGTIDsQuery): what it can no longer send. ""
	// means its binlog holds every transaction since it began.
	Purged string
}

// Oldest returns the oldest file held ("" if none).
func (h History) Oldest() string {
	if len(h.Files) == 0 {
		return ""
	}
	return h.Files[0].Name
}

// ReadHistory connects to the source and reads where its binlog begins.
// NB: never on an ingest session's way to streaming: SHOW BINARY LOGS and
// BINLOG_GTID_POS wait for the binlog's lock, which a source under load
// can hold while a commit group waits for a semi-sync ACK (seen on MariaDB
// 10.11 and MySQL 9.7 in the failover and learner e2e tests): only the
// fleet's ACK would free it. ctx bounds the whole read.
func ReadHistory(ctx context.Context, addr, user, password string, tc mysqltls.Config, flav binlog.Flavor) (History, error) {
	c, err := DialTLS(ctx, addr, user, password, tc)
	if err != nil {
		return History{}, fmt.Errorf("semisync: connecting to source %s: %w", addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Conn.Conn.SetDeadline(time.Now()) })
	defer stop()
	return readHistory(c, flav)
}

// StartAt returns where a log seeded from the source begins for
// --source-start mode (StartGTIDs): it reads the source's history unless
// mode is current.
func StartAt(ctx context.Context, info SourceInfo, mode, user, password string, tc mysqltls.Config) (start string, h History, err error) {
	flav := binlog.FlavorOfVersion(info.Version)
	if mode != StartCurrent {
		if h, err = ReadHistory(ctx, info.Source.Addr, user, password, tc, flav); err != nil {
			return "", h, fmt.Errorf("semisync: --source-start %s needs the source's binlog files: %w "+
				"(the account needs REPLICATION CLIENT; a source whose commits wait for a semi-sync ACK answers only after its timeout; or use --source-start current)", mode, err)
		}
	}
	start, err = StartGTIDs(flav, mode, info.GTIDs, h.Purged)
	return start, h, err
}

// readHistory reads the source's binlog files and purged GTIDs on c. The
// account needs REPLICATION CLIENT (MariaDB: BINLOG MONITOR), as the
// fleet's source account has.
func readHistory(c *client.Conn, flav binlog.Flavor) (History, error) {
	var h History
	r, err := execute(c, "SHOW BINARY LOGS")
	if err != nil {
		return h, fmt.Errorf("semisync: SHOW BINARY LOGS: %w", err)
	}
	// NB: the first two columns are the name and the size on both flavors
	// (MySQL adds Encrypted).
	for i := 0; i < r.RowNumber(); i++ {
		name, err1 := r.GetString(i, 0)
		size, err2 := r.GetString(i, 1)
		if err1 != nil || err2 != nil {
			r.Close()
			return h, fmt.Errorf("semisync: SHOW BINARY LOGS row %d: %v %v", i, err1, err2)
		}
		n, err := strconv.ParseUint(size, 10, 64)
		if err != nil {
			r.Close()
			return h, fmt.Errorf("semisync: SHOW BINARY LOGS: file %s size %q: %w", name, size, err)
		}
		h.Files = append(h.Files, BinlogFile{Name: strings.Clone(name), Size: n})
	}
	r.Close()
	if len(h.Files) == 0 {
		return h, fmt.Errorf("semisync: SHOW BINARY LOGS lists no file")
	}
	q := flav.PurgedGTIDsQuery(h.Oldest())
	r, err = execute(c, q)
	if err != nil {
		return h, fmt.Errorf("semisync: %s: %w", q, err)
	}
	defer r.Close()
	if r.RowNumber() > 0 {
		v, _ := r.GetString(0, 0)
		h.Purged = strings.ReplaceAll(strings.Clone(v), "\n", "")
	}
	return h, nil
}
