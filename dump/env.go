package dump

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// sessionEnv answers queryEnv from the session and its server's log.
type sessionEnv struct {
	ss *session
	f  *facts
}

var _ queryEnv = (*sessionEnv)(nil)

func (e *sessionEnv) facts() *facts {
	if e.f != nil {
		return e.f
	}
	ss := e.ss
	f := &facts{Flavor: ss.flav, Version: ss.ver, ServerID: ss.srv.cfg.ServerID, ServerUUID: ss.srv.cfg.ServerUUID,
		Overrides: ss.srv.cfg.Variables, Checksum: binlog.ChecksumCRC32, SemiSync: ss.srv.cfg.SemiSync}
	if a, ok := ss.srv.ln.Addr().(interface{ String() string }); ok {
		if _, p, err := splitPort(a.String()); err == nil {
			f.Port = p
		}
	}
	if lg := ss.srv.reader(); lg != nil {
		st := lg.State()
		f.GTIDs = st.GTIDs
		if st.File != 0 {
			f.File, f.Pos = logger.FileName(st.File), st.Pos
			f.Checksum = binlog.ChecksumAlg(st.OpenMeta.ChecksumAlg)
		}
		if len(st.FDE) > 0 {
			if alg, err := binlog.FDEChecksumAlg(st.FDE); err == nil {
				f.Checksum = alg
			}
		}
		if files, err := lg.Files(); err == nil && len(files) > 0 {
			f.Purged = files[0].StartGTIDs
		}
		if mp, ok := lg.(interface {
			MetaPrefix(string) (map[string][]byte, error)
		}); ok {
			if m, err := mp.MetaPrefix(logger.MetaSourceVarPrefix); err == nil && len(m) > 0 {
				f.SourceVars = make(map[string]string, len(m))
				for k, v := range m {
					f.SourceVars[strings.TrimPrefix(k, logger.MetaSourceVarPrefix)] = string(v)
				}
			}
		}
	}
	e.f = f
	return f
}

func splitPort(addr string) (string, int, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, err := strconv.Atoi(addr[i+1:])
			return addr[:i], p, err
		}
	}
	return "", 0, fmt.Errorf("no port in %q", addr)
}

func (e *sessionEnv) files() ([]logger.FileMeta, error) {
	lg := e.ss.srv.reader()
	if lg == nil {
		return nil, ErrNotReady
	}
	return lg.Files()
}

func (e *sessionEnv) gtidPos(file string, pos uint64) (string, bool, error) {
	lg := e.ss.srv.reader()
	if lg == nil {
		return "", false, ErrNotReady
	}
	return gtidPosAt(lg, e.ss.flav, file, pos)
}

// gtidPosAt is binlog_gtid_pos(file, pos): the GTID state after the
// transactions of file that end at or before pos. ok=false (NULL) for a
// file that is not held or a position past its end.
func gtidPosAt(lg Log, flav binlog.Flavor, file string, pos uint64) (string, bool, error) {
	n, err := logger.ParseFileName(file)
	if err != nil {
		return "", false, nil
	}
	m, err := lg.File(n)
	if errors.Is(err, logger.ErrNoFile) || errors.Is(err, logger.ErrPurged) {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	if pos > m.Size {
		return "", false, nil
	}
	set, err := flav.ParseSet(m.StartGTIDs)
	if err != nil {
		return "", false, err
	}
	var addErr error
	err = lg.Txns(n, 0, func(r logger.TxnRecord) bool {
		if r.End > pos {
			return false
		}
		addErr = set.Add(r.GTID)
		return addErr == nil
	})
	if err == nil {
		err = addErr
	}
	return set.String(), err == nil, err
}

func (e *sessionEnv) binlogEvents(file string, from uint64, offset, limit int) ([][]any, error) {
	lg := e.ss.srv.reader()
	if lg == nil {
		return nil, myError(erMasterFatalReadingBinlog, "%v", ErrNotReady)
	}
	return binlogEventRows(lg, e.ss.flav, file, from, offset, limit)
}

func (e *sessionEnv) replicaHosts(mysqlStyle, replicasCmd bool) ([]string, [][]any) {
	var names []string
	switch {
	case mysqlStyle && replicasCmd:
		names = []string{"Server_Id", "Host", "Port", "Source_Id", "Replica_UUID"}
	case mysqlStyle:
		names = []string{"Server_id", "Host", "Port", "Master_id", "Slave_UUID"}
	default:
		names = []string{"Server_id", "Host", "Port", "Master_id"}
	}
	var rows [][]any
	for _, ss := range e.ss.srv.sessionList() {
		st := ss.info.get()
		if !st.Registered {
			continue
		}
		row := []any{uint64(st.ServerID), st.ReportHost, uint64(st.ReportPort), uint64(e.ss.srv.cfg.ServerID)}
		if mysqlStyle {
			row = append(row, st.UUID)
		}
		rows = append(rows, row)
	}
	return names, rows
}

func (e *sessionEnv) connID() uint32   { return e.ss.id }
func (e *sessionEnv) userName() string { return e.ss.user }
func (e *sessionEnv) database() string { return e.ss.db }
func (e *sessionEnv) now() time.Time   { return time.Now() }

// maxEventRows bounds SHOW BINLOG EVENTS without LIMIT.
const maxEventRows = 10000

// binlogEventRows lists events of a file as SHOW BINLOG EVENTS does.
func binlogEventRows(lg Log, flav binlog.Flavor, file string, from uint64, offset, limit int) ([][]any, error) {
	var n uint32
	if file == "" {
		files, err := lg.Files()
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, nil
		}
		n = files[0].Number
	} else {
		var err error
		if n, err = logger.ParseFileName(file); err != nil {
			return nil, myError(erMasterFatalReadingBinlog, "Could not find target log during SHOW BINLOG EVENTS: '%s'", file)
		}
	}
	m, err := lg.File(n)
	if err != nil {
		return nil, myError(erMasterFatalReadingBinlog, "Could not find target log during SHOW BINLOG EVENTS: %v", err)
	}
	if from < 4 {
		from = 4
	}
	if limit < 0 || limit > maxEventRows {
		limit = maxEventRows
	}
	alg := binlog.ChecksumAlg(m.ChecksumAlg)
	var rows [][]any
	pos := from
	skipped := 0
	for len(rows) < limit && pos < m.Size {
		hdr, _, err := lg.ReadAt(n, pos, binlog.HeaderLen)
		if err != nil {
			return nil, err
		}
		h, err := binlog.ParseHeader(hdr)
		if err != nil {
			return nil, myError(erMasterFatalReadingBinlog, "Error when executing command SHOW BINLOG EVENTS: wrong offset or I/O error (at %d: %v)", pos, err)
		}
		if skipped < offset {
			skipped++
			pos += uint64(h.EventSize)
			continue
		}
		ev, _, err := lg.ReadAt(n, pos, int(min(h.EventSize, 1<<16)))
		if err != nil {
			return nil, err
		}
		rows = append(rows, []any{m.Name(), pos, eventTypeName(h.Type), uint64(h.ServerID), uint64(h.LogPos), eventInfo(flav, ev, h, alg)})
		pos += uint64(h.EventSize)
	}
	return rows, nil
}

var eventNames = map[byte]string{
	2: "Query", 3: "Stop", 4: "Rotate", 5: "Intvar", 13: "Rand", 14: "User var", 15: "Format_desc", 16: "Xid",
	19: "Table_map", 23: "Write_rows_v1", 24: "Update_rows_v1", 25: "Delete_rows_v1", 26: "Incident", 27: "Heartbeat",
	29: "Rows_query", 30: "Write_rows", 31: "Update_rows", 32: "Delete_rows", 33: "Gtid", 34: "Anonymous_Gtid",
	35: "Previous_gtids", 39: "Update_rows_partial", 40: "Transaction_payload", 41: "Heartbeat_v2", 42: "Gtid_tagged_log",
	160: "Annotate_rows", 161: "Binlog_checkpoint", 162: "Gtid", 163: "Gtid_list",
	166: "Write_rows_compressed_v1", 167: "Update_rows_compressed_v1", 168: "Delete_rows_compressed_v1",
}

func eventTypeName(t byte) string {
	if n, ok := eventNames[t]; ok {
		return n
	}
	return "Unknown(" + strconv.Itoa(int(t)) + ")"
}

// eventInfo is the Info column: a short description of the event.
func eventInfo(flav binlog.Flavor, ev []byte, h binlog.Header, alg binlog.ChecksumAlg) string {
	if int(h.EventSize) != len(ev) {
		return ""
	}
	switch h.Type {
	case binlog.TypeFDE:
		return "Server ver: " + binlog.ServerVersion(ev) + ", Binlog ver: 4"
	case binlog.TypeRotate:
		if len(ev) >= binlog.HeaderLen+8 {
			end := len(ev)
			if alg == binlog.ChecksumCRC32 {
				end -= 4
			}
			if end > binlog.HeaderLen+8 {
				p := uint64(ev[19]) | uint64(ev[20])<<8 | uint64(ev[21])<<16 | uint64(ev[22])<<24
				return fmt.Sprintf("%s;pos=%d", ev[binlog.HeaderLen+8:end], p)
			}
		}
	case binlog.TypeGTID, binlog.TypeGTIDTagged, binlog.TypeMariaDBGTID:
		if g, ok, err := flav.GTIDOfEvent(ev, alg); err == nil && ok {
			return flav.GTIDEventInfo(g)
		}
	case binlog.TypePreviousGTIDs, binlog.TypeMariaDBGTIDList:
		if s, err := flav.FileHeaderSet(ev, alg); err == nil {
			return s.String()
		}
	case binlog.TypeXID:
		if len(ev) >= binlog.HeaderLen+8 {
			x := uint64(0)
			for i := 7; i >= 0; i-- {
				x = x<<8 | uint64(ev[binlog.HeaderLen+i])
			}
			return fmt.Sprintf("COMMIT /* xid=%d */", x)
		}
	case binlog.TypeQuery:
		if q, ok := queryText(ev, alg); ok {
			return clip(q)
		}
	}
	return ""
}

// queryText extracts the statement of a QUERY_EVENT.
func queryText(ev []byte, alg binlog.ChecksumAlg) (string, bool) {
	end := len(ev)
	if alg == binlog.ChecksumCRC32 {
		end -= 4
	}
	b := binlog.HeaderLen
	if end < b+13 {
		return "", false
	}
	dbLen := int(ev[b+8])
	statusLen := int(ev[b+11]) | int(ev[b+12])<<8
	q := b + 13 + statusLen + dbLen + 1
	if q > end {
		return "", false
	}
	return string(ev[q:end]), true
}

var _ = gmysql.ER_UNKNOWN_ERROR
