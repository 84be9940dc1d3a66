package logger

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

// memStore applies ops to a map: the test stand-in for Pebble.
type memStore map[string][]byte

func (m memStore) apply(ops []op) {
	for _, o := range ops {
		switch o.kind {
		case opPut:
			m[string(o.key)] = append([]byte(nil), o.val...)
		case opDelete:
			delete(m, string(o.key))
		case opDeleteRange:
			for k := range m {
				if k >= string(o.key) && k < string(o.end) {
					delete(m, k)
				}
			}
		}
	}
}

func (m memStore) sortedKeys(lo, hi []byte) []string {
	var ks []string
	for k := range m {
		if k >= string(lo) && k < string(hi) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

func (m memStore) FileGTIDs(file uint32) ([]string, error) {
	var out []string
	for _, k := range m.sortedKeys(txnKey(file, 0), txnKey(file+1, 0)) {
		r, err := decodeTxnRecord(m[k])
		if err != nil {
			return nil, err
		}
		out = append(out, r.GTID)
	}
	return out, nil
}

// file returns the bytes of file n: the magic and its chunks in order.
func (m memStore) file(t *testing.T, n uint32) []byte {
	t.Helper()
	b := []byte(binlog.Magic)
	for _, k := range m.sortedKeys(dataKey(n, 0), dataKey(n+1, 0)) {
		_, pos, _ := decodePosKey([]byte(k))
		if pos != uint64(len(b)) {
			t.Fatalf("%s: chunk at %d, file has %d bytes", FileName(n), pos, len(b))
		}
		b = append(b, m[k]...)
	}
	return b
}

// rig drives an applier over a memStore, as the SM does over Pebble.
type rig struct {
	t     *testing.T
	a     *applier
	store memStore
	flav  binlog.Flavor
	src   Source
	pos   uint32 // the source's position, for generated transactions
}

func newRig(t *testing.T, flavor string) *rig {
	t.Helper()
	a, err := newApplier(State{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := binlog.FlavorByName(flavor)
	if err != nil {
		t.Fatal(err)
	}
	src := Source{Addr: "src1:3306", ServerID: 1, Flavor: flavor, UUID: "3e11fa47-71ca-11e1-9e33-c80aa9429562"}
	return &rig{t: t, a: a, store: memStore{}, flav: f, src: src, pos: 4}
}

func (r *rig) apply(c Command) Result {
	// Encode and decode, as every entry does on its way through raft.
	d, err := Decode(Encode(c))
	if err != nil {
		r.t.Fatalf("round trip of %T: %v", c, err)
	}
	res := r.a.apply(d, r.store)
	r.a.finish()
	r.store.apply(r.a.ops)
	r.a.ops = r.a.ops[:0]
	return res
}

func (r *rig) gtid(n int) string {
	if r.flav.Name() == "mysql" {
		return fmt.Sprintf("%s:%d", r.src.UUID, n)
	}
	return fmt.Sprintf("0-%d-%d", r.src.ServerID, n)
}

// txns makes transactions with sequence numbers from..to.
func (r *rig) txns(from, to, size int) []Txn {
	var out []Txn
	for n := from; n <= to; n++ {
		raw, end := binlogtest.Txn(r.flav, r.gtid(n), r.src.ServerID, r.pos, size)
		r.pos = end
		out = append(out, Txn{GTID: r.gtid(n), SourceFile: "src-bin.000001", SourceEnd: uint64(end), Events: raw})
	}
	return out
}

func (r *rig) fde() []byte { return binlogtest.FDE(r.flav, r.src.ServerID) }

func (r *rig) appendTxns(epoch uint64, pred string, ts []Txn) Result {
	return r.apply(&Append{Epoch: epoch, Source: r.src.Addr, Predecessor: pred, FDE: r.fde(), Txns: ts})
}

func TestApplyRules(t *testing.T) {
	for _, flavor := range []string{"mysql", "mariadb"} {
		t.Run(flavor, func(t *testing.T) {
			type step struct {
				name string
				do   func(r *rig) Result
				want Code
				// check runs after the step, on the rig.
				check func(t *testing.T, r *rig, res Result)
			}
			var t1, t2, t3 []Txn
			steps := []step{
				{"append before any source", func(r *rig) Result { return r.appendTxns(1, "", r.txns(1, 1, 10)) }, ResultNoSource, nil},
				{"set-source from a wrong expected epoch", func(r *rig) Result {
					return r.apply(&SetSource{ExpectedEpoch: 3, NewEpoch: 4, Source: r.src})
				}, ResultStaleEpoch, nil},
				{"set-source that does not raise the epoch", func(r *rig) Result {
					return r.apply(&SetSource{ExpectedEpoch: 0, NewEpoch: 0, Source: r.src})
				}, ResultInvalid, nil},
				{"set-source of an unknown flavor", func(r *rig) Result {
					s := r.src
					s.Flavor = "oracle"
					return r.apply(&SetSource{ExpectedEpoch: 0, NewEpoch: 1, Source: s})
				}, ResultMalformed, nil},
				{"set-source epoch 1", func(r *rig) Result {
					r.pos = 4
					t1, t2, t3 = r.txns(1, 2, 100), r.txns(3, 3, 100), r.txns(4, 4, 100)
					return r.apply(&SetSource{ExpectedEpoch: 0, NewEpoch: 1, Source: r.src})
				}, ResultOK, func(t *testing.T, r *rig, res Result) {
					if res.Epoch != 1 || res.Source != r.src.Addr {
						t.Fatalf("result %+v", res)
					}
				}},
				{"first append without an FDE", func(r *rig) Result {
					return r.apply(&Append{Epoch: 1, Source: r.src.Addr, Txns: t1})
				}, ResultMalformed, nil},
				{"append with a stale epoch", func(r *rig) Result { return r.appendTxns(0, "", t1) }, ResultStaleEpoch, nil},
				{"append from another source", func(r *rig) Result {
					return r.apply(&Append{Epoch: 1, Source: "other:3306", FDE: r.fde(), Txns: t1})
				}, ResultWrongSource, nil},
				{"append naming a predecessor not in the log", func(r *rig) Result { return r.appendTxns(1, r.gtid(99), t1) }, ResultWrongPredecessor, nil},
				{"append of no transactions", func(r *rig) Result { return r.appendTxns(1, "", nil) }, ResultMalformed, nil},
				{"append whose GTID does not match its GTID event", func(r *rig) Result {
					bad := t1[0]
					bad.GTID = r.gtid(7)
					return r.appendTxns(1, "", []Txn{bad})
				}, ResultMalformed, nil},
				{"append with a corrupted checksum", func(r *rig) Result {
					bad := t1[0]
					bad.Events = append([]byte(nil), bad.Events...)
					bad.Events[len(bad.Events)-1] ^= 0xff
					return r.appendTxns(1, "", []Txn{bad})
				}, ResultMalformed, nil},
				{"append with truncated events", func(r *rig) Result {
					bad := t1[0]
					bad.Events = bad.Events[:len(bad.Events)-3]
					return r.appendTxns(1, "", []Txn{bad})
				}, ResultMalformed, nil},
				{"append repeating a GTID inside the batch", func(r *rig) Result {
					return r.appendTxns(1, "", []Txn{t1[0], t1[0]})
				}, ResultMalformed, nil},
				{"rejections left the log empty", func(r *rig) Result { return Result{Code: ResultOK} }, ResultOK, func(t *testing.T, r *rig, _ Result) {
					if r.a.st.File != 0 || r.a.st.Txns != 0 || len(r.store.sortedKeys(dataKey(0, 0), []byte{prefixData + 1})) != 0 {
						t.Fatalf("a rejected append wrote: state %+v", r.a.st)
					}
				}},
				{"first append", func(r *rig) Result { return r.appendTxns(1, "", t1) }, ResultOK, func(t *testing.T, r *rig, res Result) {
					if res.Appended != 2 || res.LastGTID != t1[1].GTID || res.File != 1 {
						t.Fatalf("result %+v", res)
					}
				}},
				{"the same append again is a duplicate", func(r *rig) Result { return r.appendTxns(1, "", t1) }, ResultDuplicate, func(t *testing.T, r *rig, res Result) {
					if res.Skipped != 2 || r.a.st.Txns != 2 {
						t.Fatalf("result %+v, %d txns", res, r.a.st.Txns)
					}
				}},
				{"a retry that overlaps the log skips what is stored", func(r *rig) Result {
					return r.appendTxns(1, "", append(append([]Txn{}, t1...), t2...))
				}, ResultOK, func(t *testing.T, r *rig, res Result) {
					if res.Skipped != 2 || res.Appended != 1 || r.a.st.LastGTID != t2[0].GTID {
						t.Fatalf("result %+v", res)
					}
				}},
				{"a stale proposer's append after the log moved on", func(r *rig) Result { return r.appendTxns(1, t1[1].GTID, t3) }, ResultWrongPredecessor, nil},
				{"purge of the open file", func(r *rig) Result { return r.apply(&Purge{UpTo: 2}) }, ResultInvalid, nil},
				{"a max file size too small", func(r *rig) Result { return r.apply(&Meta{Key: MetaMaxFileSize, Value: []byte("100")}) }, ResultInvalid, nil},
				{"meta without a key", func(r *rig) Result { return r.apply(&Meta{Value: []byte("x")}) }, ResultMalformed, nil},
				{"set-source of the other flavor", func(r *rig) Result {
					s := r.src
					s.Flavor = map[string]string{"mysql": "mariadb", "mariadb": "mysql"}[flavor]
					return r.apply(&SetSource{ExpectedEpoch: 1, NewEpoch: 2, Source: s})
				}, ResultFlavorMismatch, nil},
				{"set-source epoch 2 to a new source", func(r *rig) Result {
					s := r.src
					s.Addr = "src2:3306"
					return r.apply(&SetSource{ExpectedEpoch: 1, NewEpoch: 2, Source: s})
				}, ResultOK, nil},
				{"the old source's epoch is fenced", func(r *rig) Result { return r.appendTxns(1, t2[0].GTID, t3) }, ResultStaleEpoch, nil},
				{"the old source at the new epoch is fenced", func(r *rig) Result { return r.appendTxns(2, t2[0].GTID, t3) }, ResultWrongSource, nil},
				{"the new source continues the log in a new file", func(r *rig) Result {
					return r.apply(&Append{Epoch: 2, Source: "src2:3306", Predecessor: t2[0].GTID, FDE: r.fde(), Txns: t3})
				}, ResultOK, func(t *testing.T, r *rig, res Result) {
					if res.File != 2 {
						t.Fatalf("a source change must start a new file; result %+v", res)
					}
				}},
				{"purge of the first file", func(r *rig) Result { return r.apply(&Purge{UpTo: 2}) }, ResultOK, func(t *testing.T, r *rig, _ Result) {
					if _, ok := r.store[string(gtidKey(t1[0].GTID))]; ok {
						t.Fatal("purge left the GTID index of file 1")
					}
					if _, ok := r.store[string(fileKey(1))]; ok {
						t.Fatal("purge left file 1's meta")
					}
					if r.a.st.FirstFile != 2 {
						t.Fatalf("first file %d", r.a.st.FirstFile)
					}
				}},
			}
			r := newRig(t, flavor)
			for _, s := range steps {
				res := s.do(r)
				if res.Code != s.want {
					t.Fatalf("%s: got %s (%s), want %s", s.name, res.Code, res.Message, s.want)
				}
				if !res.Code.Stored() && res.Message == "" {
					t.Fatalf("%s: a rejection without a message", s.name)
				}
				if s.check != nil {
					s.check(t, r, res)
				}
			}
		})
	}
}

// sequence runs appends, size rotations, a forced rotation and a source
// change, and returns every file's bytes.
func sequence(t *testing.T, flavor string) (map[uint32][]byte, *rig) {
	r := newRig(t, flavor)
	must := func(res Result) {
		t.Helper()
		if !res.Code.Stored() {
			t.Fatalf("%s: %s", res.Code, res.Message)
		}
	}
	must(r.apply(&Meta{Key: MetaMaxFileSize, Value: []byte("4096")}))
	must(r.apply(&SetSource{ExpectedEpoch: 0, NewEpoch: 1, Source: r.src}))
	n := 1
	for i := 0; i < 6; i++ { // 6 batches of 5 txns of ~300 bytes: several size rotations
		must(r.appendTxns(1, r.a.st.LastGTID, r.txns(n, n+4, 600)))
		n += 5
	}
	must(r.apply(&Rotate{}))
	must(r.appendTxns(1, r.a.st.LastGTID, r.txns(n, n, 5000))) // larger than a file: never split
	n++
	s2 := r.src
	s2.Addr = "src2:3306"
	must(r.apply(&SetSource{ExpectedEpoch: 1, NewEpoch: 2, Source: s2}))
	r.src = s2
	must(r.appendTxns(2, r.a.st.LastGTID, r.txns(n, n+2, 100)))
	files := map[uint32][]byte{}
	for f := uint32(1); f <= r.a.st.File; f++ {
		files[f] = r.store.file(t, f)
	}
	return files, r
}

func TestNamespaceIsDeterministic(t *testing.T) {
	for _, flavor := range []string{"mysql", "mariadb"} {
		t.Run(flavor, func(t *testing.T) {
			a, ra := sequence(t, flavor)
			b, rb := sequence(t, flavor)
			if len(a) < 5 {
				t.Fatalf("expected several files from size rotation, a rotate and a source change; got %d", len(a))
			}
			for f := range a {
				if !bytes.Equal(a[f], b[f]) {
					t.Fatalf("%s differs between two runs", FileName(f))
				}
			}
			if ra.a.st.GTIDs != rb.a.st.GTIDs || ra.a.st.GTIDs == "" {
				t.Fatalf("GTID states %q and %q", ra.a.st.GTIDs, rb.a.st.GTIDs)
			}
			checkFiles(t, ra, a)
		})
	}
}

// checkFiles parses every file with go-mysql's parser (checksums on) and
// checks the layout: magic, FDE, GTID header event, transactions, and a
// rotate at the end of every closed file; log_pos of each event is its end.
func checkFiles(t *testing.T, r *rig, files map[uint32][]byte) {
	t.Helper()
	var nums []uint32
	for f := range files {
		nums = append(nums, f)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	var allGTIDs []string
	for _, f := range nums {
		b := files[f]
		if string(b[:4]) != binlog.Magic {
			t.Fatalf("%s: no magic", FileName(f))
		}
		evs, err := binlog.SplitEvents(b[4:])
		if err != nil {
			t.Fatalf("%s: %v", FileName(f), err)
		}
		pos := uint64(4)
		for i, ev := range evs {
			h, _ := binlog.ParseHeader(ev)
			pos += uint64(len(ev))
			if uint64(h.LogPos) != pos {
				t.Fatalf("%s event %d: log_pos %d, ends at %d", FileName(f), i, h.LogPos, pos)
			}
			if err := binlog.VerifyChecksum(ev, binlog.ChecksumCRC32); err != nil {
				t.Fatalf("%s event %d: %v", FileName(f), i, err)
			}
		}
		if evs[0][4] != byte(replication.FORMAT_DESCRIPTION_EVENT) {
			t.Fatalf("%s does not start with an FDE", FileName(f))
		}
		wantHdr := replication.PREVIOUS_GTIDS_EVENT
		if r.flav.Name() == "mariadb" {
			wantHdr = replication.MARIADB_GTID_LIST_EVENT
		}
		if evs[1][4] != byte(wantHdr) {
			t.Fatalf("%s: second event is type %d, want %d", FileName(f), evs[1][4], wantHdr)
		}
		last := evs[len(evs)-1][4]
		if f != nums[len(nums)-1] && last != byte(replication.ROTATE_EVENT) {
			t.Fatalf("closed %s does not end with a rotate (type %d)", FileName(f), last)
		}
		p := replication.NewBinlogParser()
		p.SetFlavor(r.flav.Name())
		p.SetVerifyChecksum(true)
		err = p.ParseReader(bytes.NewReader(b[4:]), func(e *replication.BinlogEvent) error {
			switch ev := e.Event.(type) {
			case *replication.GTIDEvent:
				allGTIDs = append(allGTIDs, fmt.Sprintf("%s:%d", uuidString(ev.SID), ev.GNO))
			case *replication.MariadbGTIDEvent:
				allGTIDs = append(allGTIDs, ev.GTID.String())
			case *replication.RotateEvent:
				if string(ev.NextLogName) != FileName(f+1) || ev.Position != 4 {
					t.Fatalf("%s rotates to %s:%d", FileName(f), ev.NextLogName, ev.Position)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("go-mysql cannot parse %s: %v", FileName(f), err)
		}
	}
	if len(allGTIDs) != int(r.a.st.Txns) {
		t.Fatalf("files hold %d GTID events, the log %d transactions", len(allGTIDs), r.a.st.Txns)
	}
	for i, g := range allGTIDs {
		if g != r.gtid(i+1) {
			t.Fatalf("transaction %d is %s, want %s (source order)", i, g, r.gtid(i+1))
		}
	}
}

func uuidString(b []byte) string {
	h := fmt.Sprintf("%x", b)
	return strings.Join([]string{h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]}, "-")
}

// TestEventsRewrittenOnlyInPosAndChecksum checks rule: each stored event is
// the source's, byte for byte, but for log_pos and the checksum.
func TestEventsRewrittenOnlyInPosAndChecksum(t *testing.T) {
	r := newRig(t, "mariadb")
	r.apply(&SetSource{ExpectedEpoch: 0, NewEpoch: 1, Source: r.src})
	r.pos = 1000
	ts := r.txns(1, 3, 200)
	if res := r.appendTxns(1, "", ts); res.Code != ResultOK {
		t.Fatal(res)
	}
	file := r.store.file(t, 1)
	for _, tx := range ts {
		fp := r.store[string(gtidKey(tx.GTID))]
		f, p, _ := decodeFilePos(fp)
		rec, err := decodeTxnRecord(r.store[string(txnKey(f, p))])
		if err != nil {
			t.Fatal(err)
		}
		stored := file[rec.Pos:rec.End]
		if len(stored) != len(tx.Events) {
			t.Fatalf("%s: %d bytes stored, %d sent", tx.GTID, len(stored), len(tx.Events))
		}
		src, _ := binlog.SplitEvents(tx.Events)
		got, _ := binlog.SplitEvents(stored)
		for i := range src {
			a, b := src[i], got[i]
			if !bytes.Equal(a[:13], b[:13]) || !bytes.Equal(a[17:len(a)-4], b[17:len(b)-4]) {
				t.Fatalf("%s event %d changed beyond log_pos and checksum", tx.GTID, i)
			}
		}
		if rec.SourceEnd != tx.SourceEnd || rec.SourceFile != tx.SourceFile {
			t.Fatalf("record %+v", rec)
		}
	}
	if sum := sha256.Sum256(file); sum == [32]byte{} {
		t.Fatal("unreachable")
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	cmds := []Command{
		&Append{Epoch: 7, Source: "a:1", Predecessor: "0-1-5", FDE: []byte{1, 2, 3}, Txns: []Txn{{GTID: "0-1-6", SourceFile: "f.1", SourceEnd: 99, Events: []byte("ev")}}},
		&SetSource{ExpectedEpoch: 1, NewEpoch: 2, Source: Source{Addr: "a:1", UUID: "u", ServerID: 9, Flavor: "mysql"}},
		&Purge{UpTo: 4},
		&Rotate{},
		&Meta{Key: "k", Value: []byte("v")},
	}
	for _, c := range cmds {
		got, err := Decode(Encode(c))
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if !bytes.Equal(Encode(got), Encode(c)) {
			t.Fatalf("%T does not round trip", c)
		}
	}
	for _, bad := range [][]byte{nil, {1}, {2, 1}, {1, 99}, append(Encode(&Purge{UpTo: 1}), 0), Encode(cmds[0])[:10]} {
		if _, err := Decode(bad); err == nil {
			t.Fatalf("Decode(%x) accepted garbage", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(&Append{Epoch: 1, Source: "a", Txns: []Txn{{GTID: "0-1-1", Events: []byte{1}}}}))
	f.Add(Encode(&SetSource{NewEpoch: 1, Source: Source{Addr: "a", Flavor: "mysql"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must apply without panicking.
		a, _ := newApplier(State{})
		a.apply(c, memStore{})
	})
}

func TestSetSourceStartGTIDs(t *testing.T) {
	for _, c := range []struct{ flavor, start, first string }{
		{"mariadb", "0-1-10,7-3-4", "0-1-11"},
		{"mysql", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", "3e11fa47-71ca-11e1-9e33-c80aa9429562:11"},
	} {
		t.Run(c.flavor, func(t *testing.T) {
			r := newRig(t, c.flavor)
			bad := r.apply(&SetSource{NewEpoch: 1, Source: r.src, StartGTIDs: "garbage"})
			if bad.Code != ResultMalformed || r.a.flav != nil || r.a.st.Flavor != "" {
				t.Fatalf("bad start GTIDs: %+v, flavor left %v", bad, r.a.flav)
			}
			if res := r.apply(&SetSource{NewEpoch: 1, Source: r.src, StartGTIDs: c.start}); res.Code != ResultOK {
				t.Fatal(res)
			}
			if r.a.st.GTIDs != c.start {
				t.Fatalf("log starts at %q, want %q", r.a.st.GTIDs, c.start)
			}
			// An already-covered GTID is a duplicate; the next one is stored.
			r.pos = 4
			if res := r.appendTxns(1, "", r.txns(10, 10, 50)); res.Code != ResultDuplicate {
				t.Fatalf("a GTID inside the start state: %s", res.Code)
			}
			if res := r.appendTxns(1, "", r.txns(11, 11, 50)); res.Code != ResultOK {
				t.Fatalf("%s: %s", res.Code, res.Message)
			}
			// The first file's header event names the start state.
			evs, _ := binlog.SplitEvents(r.store.file(t, 1)[4:])
			set, err := r.flav.FileHeaderSet(evs[1], binlog.ChecksumCRC32)
			if err != nil || set.String() != c.start {
				t.Fatalf("file header set %v, %v", set, err)
			}
			// A later SetSource does not move a log that has a state.
			s2 := r.src
			s2.Addr = "b:1"
			if res := r.apply(&SetSource{ExpectedEpoch: 1, NewEpoch: 2, Source: s2, StartGTIDs: c.start}); res.Code != ResultOK || r.a.st.LastGTID != c.first {
				t.Fatalf("%+v last %s", res, r.a.st.LastGTID)
			}
		})
	}
}

func TestResultEncoding(t *testing.T) {
	for _, r := range []Result{
		{},
		{Code: ResultOK, Epoch: 7, Source: "127.0.0.1:3306", LastGTID: "0-1-99", File: 3, Pos: 1 << 40, Appended: 16, Skipped: 2},
		{Code: ResultWrongPredecessor, Message: "append continues \"a\", the log's last transaction is \"b\"", Epoch: 1 << 63},
	} {
		got := decodeResult(uint64(r.Code), r.encode())
		if got != r {
			t.Errorf("round trip: got %+v, want %+v", got, r)
		}
	}
	full := Result{Code: ResultOK, Source: "s", LastGTID: "0-1-1", Epoch: 3}.encode()
	for i := 1; i < len(full); i++ {
		if r := decodeResult(uint64(ResultOK), full[:i]); !strings.Contains(r.Message, "undecodable") {
			t.Errorf("a result cut to %d bytes decoded as %+v", i, r)
		}
	}
	if r := decodeResult(uint64(ResultOK), []byte{9, 0}); !strings.Contains(r.Message, "version 9") {
		t.Errorf("unknown version decoded as %+v", r)
	}
}
