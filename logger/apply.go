package logger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// opKind is the kind of one key write produced by apply.
type opKind byte

const (
	opPut opKind = iota
	opDelete
	opDeleteRange
)

// op is one key write. Apply produces them; the shell writes them into one
// Pebble batch together with the applied index.
type op struct {
	kind     opKind
	key, val []byte
	end      []byte // exclusive end for opDeleteRange
}

// View is what apply may read besides the State: the transactions of closed
// files (for Purge). Implementations read committed and pending writes.
type View interface {
	// FileGTIDs returns the GTIDs of the transactions stored in file.
	FileGTIDs(file uint32) ([]string, error)
}

// applier applies commands to a State. It is pure: the same state, view and
// command give the same result and writes on every member and every run.
type applier struct {
	st   State
	set  binlog.Set // parsed st.GTIDs; nil until a flavor is known
	flav binlog.Flavor
	ops  []op
	// dirty: a command changed the state since finish last wrote it.
	dirty bool
}

// finish brings st.GTIDs up to date and writes the state: once per batch of
// commands rather than once per command (the state record is the largest
// write of a small append).
func (a *applier) finish() {
	if !a.dirty {
		return
	}
	if a.set != nil {
		a.st.GTIDs = a.set.String()
	}
	a.put(keyState, mustJSON(a.st))
	a.dirty = false
}

func newApplier(st State) (*applier, error) {
	a := &applier{st: st}
	if st.Flavor != "" {
		f, err := binlog.FlavorByName(st.Flavor)
		if err != nil {
			return nil, err
		}
		set, err := f.ParseSet(st.GTIDs)
		if err != nil {
			return nil, fmt.Errorf("logger: stored GTID state %q: %w", st.GTIDs, err)
		}
		a.flav, a.set = f, set
	}
	if a.st.MaxFileSize == 0 {
		a.st.MaxFileSize = DefaultMaxFileSize
	}
	return a, nil
}

// apply applies one command. On a rejection the state and the pending writes
// are left exactly as they were.
func (a *applier) apply(c Command, v View) Result {
	saved, savedSet, savedFlav, savedOps := a.st, a.set, a.flav, len(a.ops)
	if a.set != nil {
		a.set = a.set.Clone()
	}
	var r Result
	switch c := c.(type) {
	case *Append:
		r = a.applyAppend(c)
	case *SetSource:
		r = a.applySetSource(c)
	case *Purge:
		r = a.applyPurge(c, v)
	case *Rotate:
		r = a.applyRotate()
	case *Meta:
		r = a.applyMeta(c)
	default:
		r = Result{Code: ResultMalformed, Message: fmt.Sprintf("unknown command %T", c)}
	}
	if !r.Code.Stored() {
		a.st, a.set, a.flav, a.ops = saved, savedSet, savedFlav, a.ops[:savedOps]
	} else {
		a.dirty = true
	}
	r.Epoch, r.Source, r.LastGTID, r.File, r.Pos = a.st.Epoch, a.st.Source.String(), a.st.LastGTID, a.st.File, a.st.Pos
	return r
}

func reject(code Code, format string, args ...any) Result {
	return Result{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (a *applier) applyAppend(c *Append) Result {
	switch {
	case a.st.Epoch == 0 || a.flav == nil:
		return reject(ResultNoSource, "the log has no source yet")
	case c.Epoch != a.st.Epoch:
		return reject(ResultStaleEpoch, "append for epoch %d, the log is at epoch %d", c.Epoch, a.st.Epoch)
	case a.st.Source.Fenced:
		return reject(ResultWrongSource, "append from source %q, the log's source is fenced (%s)", c.Source, a.st.Source)
	case c.Source != a.st.Source.Addr:
		return reject(ResultWrongSource, "append from source %q, the log's source is %q", c.Source, a.st.Source.Addr)
	case len(c.Txns) == 0:
		return reject(ResultMalformed, "append with no transactions")
	}
	// Leading transactions already in the log are skipped: proposals are
	// idempotent. The predecessor check then applies to the first new one.
	skip := 0
	for skip < len(c.Txns) {
		g, err := a.flav.ParseGTID(c.Txns[skip].GTID)
		if err != nil {
			return reject(ResultMalformed, "transaction %d: %v", skip, err)
		}
		if !a.set.Contains(g) {
			break
		}
		skip++
	}
	if skip == len(c.Txns) {
		return Result{Code: ResultDuplicate, Skipped: skip}
	}
	pred := c.Predecessor
	if skip > 0 {
		pred = c.Txns[skip-1].GTID
	}
	if pred != a.st.LastGTID {
		return reject(ResultWrongPredecessor, "append continues %q, the log's last transaction is %q", pred, a.st.LastGTID)
	}
	fde := a.st.FDE
	if len(c.FDE) > 0 {
		fde = c.FDE
	}
	if len(fde) == 0 {
		return reject(ResultMalformed, "the first append from a source must carry its format description event")
	}
	alg, err := binlog.FDEChecksumAlg(fde)
	if err != nil {
		return reject(ResultMalformed, "format description event: %v", err)
	}
	if a.st.File == 0 || a.st.NeedRotate || !sameFDE(a.st.FDE, fde) {
		if a.st.File != 0 {
			a.closeFile()
		}
		a.st.FDE = append([]byte(nil), fde...)
		if r, ok := a.openFile(alg); !ok {
			return r
		}
	}
	chunkPos := a.st.Pos
	var chunk []byte
	flush := func() {
		if len(chunk) > 0 {
			a.put(dataKey(a.st.File, chunkPos), chunk)
			chunk = nil
		}
		chunkPos = a.st.Pos
	}
	for i, t := range c.Txns[skip:] {
		g, err := a.flav.ParseGTID(t.GTID)
		if err != nil {
			return reject(ResultMalformed, "transaction %d: %v", skip+i, err)
		}
		if a.set.Contains(g) {
			return reject(ResultMalformed, "transaction %d (%s) repeats a transaction of the log", skip+i, g)
		}
		evs, err := binlog.SplitEvents(t.Events)
		if err != nil || len(evs) == 0 {
			return reject(ResultMalformed, "transaction %s: events: %v", g, err)
		}
		eg, ok, err := a.flav.GTIDOfEvent(evs[0], alg)
		if err != nil || !ok || eg != g {
			return reject(ResultMalformed, "transaction %s does not start with its GTID event (found %q, %v)", g, eg, err)
		}
		size := uint64(len(t.Events))
		if a.st.FileTxns > 0 && a.st.Pos+size > a.st.MaxFileSize {
			flush()
			a.closeFile()
			if r, ok := a.openFile(alg); !ok {
				return r
			}
			chunkPos = a.st.Pos
		}
		start := a.st.Pos
		if chunk == nil {
			chunk = make([]byte, 0, chunkCap(c.Txns[skip+i:]))
		}
		// The events are copied once, into the chunk, and relocated there.
		base := len(chunk)
		for _, ev := range evs {
			h, err := binlog.ParseHeader(ev)
			if err != nil {
				return reject(ResultMalformed, "transaction %s: %v", g, err)
			}
			end := a.st.Pos + uint64(len(chunk)-base) + uint64(len(ev))
			if end > 1<<32-1 {
				return reject(ResultMalformed, "transaction %s would end past 4 GiB in %s", g, FileName(a.st.File))
			}
			chunk = append(chunk, ev...)
			// NB: Relocate verifies the source's checksum before it writes a
			// new one, so a corrupted event is rejected, never laundered.
			if err := binlog.Relocate(chunk[len(chunk)-len(ev):], uint32(end), alg); err != nil {
				return reject(ResultMalformed, "transaction %s: %v", g, err)
			}
			if h.Timestamp > a.st.LastTimestamp {
				a.st.LastTimestamp = h.Timestamp
			}
		}
		a.st.Pos += uint64(len(chunk) - base)
		if err := a.set.Add(g); err != nil {
			return reject(ResultMalformed, "transaction %s: %v", g, err)
		}
		rec := TxnRecord{GTID: g, File: a.st.File, Pos: start, End: a.st.Pos, SourceFile: t.SourceFile, SourceEnd: t.SourceEnd, Epoch: a.st.Epoch}
		a.put(txnKey(a.st.File, start), rec.encode())
		a.put(gtidKey(g), encodeFilePos(a.st.File, start))
		a.st.LastGTID = g
		a.st.FileTxns++
		a.st.Txns++
	}
	flush()
	a.putFileMeta(func(m *FileMeta) {
		m.Size = a.st.Pos
		m.Txns = a.st.FileTxns
		m.LastTime = a.st.LastTimestamp
		if m.FirstTime == 0 {
			m.FirstTime = a.st.LastTimestamp
		}
	})
	return Result{Code: ResultOK, Appended: len(c.Txns) - skip, Skipped: skip}
}

// chunkCap is the size of the transactions' events: the chunk an append
// writes holds them all unless the file rotates on the way.
func chunkCap(txns []Txn) int {
	n := 0
	for _, t := range txns {
		n += len(t.Events)
	}
	return n
}

// sameFDE compares two format description events without their header's
// timestamp, log position and flags, and without the checksum: the parts
// that differ between two files of the same server.
func sameFDE(a, b []byte) bool {
	if len(a) != len(b) || len(a) < binlog.HeaderLen+4 {
		return false
	}
	return bytes.Equal(a[4:13], b[4:13]) && bytes.Equal(a[binlog.HeaderLen:len(a)-4], b[binlog.HeaderLen:len(b)-4])
}

// openFile starts file st.File+1 with the FDE and the GTID header event.
func (a *applier) openFile(alg binlog.ChecksumAlg) (Result, bool) {
	a.st.File++
	if a.st.FirstFile == 0 {
		a.st.FirstFile = a.st.File
	}
	a.st.Pos = uint64(len(binlog.Magic))
	a.st.FileTxns = 0
	a.st.NeedRotate = false
	fde, err := binlog.PrepareFDE(a.st.FDE, uint32(a.st.Pos)+uint32(len(a.st.FDE)))
	if err != nil {
		return reject(ResultMalformed, "format description event: %v", err), false
	}
	a.st.Pos += uint64(len(fde))
	h, err := binlog.ParseHeader(fde)
	if err != nil {
		return reject(ResultMalformed, "format description event: %v", err), false
	}
	ts := a.st.LastTimestamp
	if ts == 0 {
		ts = h.Timestamp
	}
	hdrLen, err := a.flav.FileHeaderEvent(a.set, ts, a.st.Source.ServerID, 0, alg)
	if err != nil {
		return reject(ResultMalformed, "file header event: %v", err), false
	}
	hdr, err := a.flav.FileHeaderEvent(a.set, ts, a.st.Source.ServerID, uint32(a.st.Pos)+uint32(len(hdrLen)), alg)
	if err != nil {
		return reject(ResultMalformed, "file header event: %v", err), false
	}
	a.st.Pos += uint64(len(hdr))
	a.put(dataKey(a.st.File, uint64(len(binlog.Magic))), append(fde, hdr...))
	m := FileMeta{
		Number: a.st.File, StartGTIDs: a.set.String(), Size: a.st.Pos, Epoch: a.st.Epoch,
		Source: a.st.Source.Addr, Flavor: a.st.Flavor, HeaderEnd: a.st.Pos, ChecksumAlg: byte(alg),
		SourceServer: a.st.Source.ServerID, FirstTime: ts, LastTime: ts,
	}
	a.st.OpenMeta = m
	a.put(fileKey(a.st.File), mustJSON(m))
	return Result{}, true
}

// applyRotate closes the open file and opens the next one, as a size
// rotation does, so the next file exists (and SHOW BINARY LOGS lists it) as
// soon as the rotation is applied. Nothing is done, and the result's
// message says why, when the open file holds no transaction, or when the
// next append opens a new file anyway (the source changed). A rotation
// that is done says RotatedPrefix + the closed file's name.
func (a *applier) applyRotate() Result {
	switch {
	case a.st.File == 0:
		return Result{Code: ResultOK, Message: "nothing to rotate: the log has no file yet"}
	case a.st.NeedRotate:
		return Result{Code: ResultOK, Message: "nothing to rotate: the source changed, the next transaction opens a new file"}
	case a.st.FileTxns == 0:
		return Result{Code: ResultOK, Message: fmt.Sprintf("nothing to rotate: %s holds no transaction yet", FileName(a.st.File))}
	}
	alg, err := binlog.FDEChecksumAlg(a.st.FDE)
	if err != nil {
		return reject(ResultMalformed, "rotate: the open file's format description event: %v", err)
	}
	closed := a.st.File
	a.closeFile()
	if r, ok := a.openFile(alg); !ok {
		return r
	}
	return Result{Code: ResultOK, Message: RotatedPrefix + FileName(closed)}
}

// RotatedPrefix starts the message of a Rotate's result when it closed a
// file (the closed file's name follows).
const RotatedPrefix = "rotated: closed "

// closeFile writes the Rotate event that ends the open file.
func (a *applier) closeFile() {
	// NB: the open file's own algorithm: after a source change st.FDE is
	// already the next source's (or nil).
	alg := binlog.ChecksumAlg(a.st.OpenMeta.ChecksumAlg)
	next := FileName(a.st.File + 1)
	n := len(binlog.RotateEvent(0, 0, 0, 0, next, 4, alg))
	ev := binlog.RotateEvent(a.st.LastTimestamp, a.st.Source.ServerID, uint32(a.st.Pos)+uint32(n), 0, next, 4, alg)
	a.put(dataKey(a.st.File, a.st.Pos), ev)
	a.st.Pos += uint64(len(ev))
	a.putFileMeta(func(m *FileMeta) {
		m.Size = a.st.Pos
		m.Closed = true
		m.Txns = a.st.FileTxns
	})
	a.st.FileTxns = 0
}

// putFileMeta updates the open file's meta, kept in the State, and writes it.
func (a *applier) putFileMeta(f func(*FileMeta)) {
	m := &a.st.OpenMeta
	if m.Number != a.st.File || m.Number == 0 {
		return
	}
	f(m)
	a.put(fileKey(m.Number), mustJSON(*m))
}

func (a *applier) applySetSource(c *SetSource) Result {
	if c.ExpectedEpoch != a.st.Epoch {
		return reject(ResultStaleEpoch, "set-source expects epoch %d, the log is at epoch %d", c.ExpectedEpoch, a.st.Epoch)
	}
	if c.NewEpoch <= c.ExpectedEpoch {
		return reject(ResultInvalid, "set-source must raise the epoch (%d -> %d)", c.ExpectedEpoch, c.NewEpoch)
	}
	if c.Source.Addr == "" {
		return reject(ResultMalformed, "set-source without a source address")
	}
	f, err := binlog.FlavorByName(c.Source.Flavor)
	if err != nil {
		return reject(ResultMalformed, "set-source: %v", err)
	}
	if a.flav != nil && a.flav.Name() != f.Name() {
		return reject(ResultFlavorMismatch, "the log holds %s transactions; a %s source cannot continue it", a.flav.Name(), f.Name())
	}
	if a.flav == nil {
		a.flav, a.set = f, f.EmptySet()
		a.st.Flavor = f.Name()
	}
	if c.StartGTIDs != "" && a.st.Txns == 0 && a.st.File == 0 && a.set.String() == "" {
		set, err := f.ParseSet(c.StartGTIDs)
		if err != nil {
			return reject(ResultMalformed, "set-source: start GTIDs: %v", err)
		}
		a.set = set
	}
	a.st.Epoch = c.NewEpoch
	a.st.Source = c.Source
	a.st.Source.Flavor = f.Name()
	a.st.FDE = nil
	a.st.NeedRotate = true
	return Result{Code: ResultOK}
}

func (a *applier) applyPurge(c *Purge, v View) Result {
	if c.UpTo > a.st.File {
		return reject(ResultInvalid, "cannot purge up to %s: the open file is %s", FileName(c.UpTo), FileName(a.st.File))
	}
	if c.UpTo <= a.st.FirstFile {
		return Result{Code: ResultOK}
	}
	for f := a.st.FirstFile; f < c.UpTo; f++ {
		gs, err := v.FileGTIDs(f)
		if err != nil {
			// NB: a read error of local data is not a verdict on the command;
			// it is reported and the purge is not applied on this member's
			// state either, so all members stay equal only if reads work.
			return reject(ResultInvalid, "purge: reading %s: %v", FileName(f), err)
		}
		for _, g := range gs {
			a.del(gtidKey(g))
		}
		a.delRange(dataKey(f, 0), dataKey(f+1, 0))
		a.delRange(txnKey(f, 0), txnKey(f+1, 0))
		a.del(fileKey(f))
	}
	a.st.FirstFile = c.UpTo
	return Result{Code: ResultOK}
}

func (a *applier) applyMeta(c *Meta) Result {
	if c.Key == "" {
		return reject(ResultMalformed, "meta without a key")
	}
	if c.Key == MetaMaxFileSize {
		n, err := strconv.ParseUint(string(c.Value), 10, 64)
		if err != nil || n < 4096 || n > 1<<32-1 {
			return reject(ResultInvalid, "%s must be a size in bytes between 4096 and 4294967295, got %q", MetaMaxFileSize, c.Value)
		}
		a.st.MaxFileSize = n
	}
	if len(c.Value) == 0 {
		a.del(metaKey(c.Key))
	} else {
		a.put(metaKey(c.Key), append([]byte(nil), c.Value...))
	}
	return Result{Code: ResultOK}
}

func (a *applier) put(k, v []byte) { a.ops = append(a.ops, op{kind: opPut, key: k, val: v}) }
func (a *applier) del(k []byte)    { a.ops = append(a.ops, op{kind: opDelete, key: k}) }
func (a *applier) delRange(s, e []byte) {
	a.ops = append(a.ops, op{kind: opDeleteRange, key: s, end: e})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("logger: encoding %T: %v", v, err)) // NB: only plain structs are encoded
	}
	return b
}
