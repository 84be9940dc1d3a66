package logger

import (
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// TestRotateOpensNextFile: a rotate closes the open file with a rotate
// event naming the next one and opens that one at once (its header in
// place, so it is listed before any transaction reaches it); the next
// append goes there. A rotate with nothing to close changes nothing and
// says why.
func TestRotateOpensNextFile(t *testing.T) {
	for _, flavor := range []string{"mysql", "mariadb"} {
		t.Run(flavor, func(t *testing.T) {
			r := newRig(t, flavor)
			if res := r.apply(&Rotate{}); res.Code != ResultOK || !strings.HasPrefix(res.Message, "nothing to rotate: the log has no file") {
				t.Fatalf("rotate of an empty log: %+v", res)
			}
			if res := r.apply(&SetSource{NewEpoch: 1, Source: r.src}); res.Code != ResultOK {
				t.Fatal(res)
			}
			if res := r.appendTxns(1, "", r.txns(1, 2, 100)); res.Code != ResultOK {
				t.Fatal(res)
			}
			res := r.apply(&Rotate{})
			if res.Code != ResultOK || res.File != 2 || res.Message != RotatedPrefix+FileName(1) {
				t.Fatalf("rotate: %+v", res)
			}
			st := r.a.st
			if st.FileTxns != 0 || st.OpenMeta.Number != 2 || st.OpenMeta.Closed || st.Pos != st.OpenMeta.HeaderEnd {
				t.Fatalf("after the rotate the open file is %+v at %d", st.OpenMeta, st.Pos)
			}
			// Rotating the fresh file again does nothing.
			if res := r.apply(&Rotate{}); res.Code != ResultOK || res.File != 2 || !strings.Contains(res.Message, "holds no transaction") {
				t.Fatalf("second rotate: %+v", res)
			}
			if res := r.appendTxns(1, r.a.st.LastGTID, r.txns(3, 3, 100)); res.Code != ResultOK || res.File != 2 {
				t.Fatalf("append after the rotate: %+v", res)
			}
			// File 1 ends with a rotate event to file 2; file 2 starts with
			// the FDE and holds transaction 3.
			events := func(n uint32) []byte {
				evs, err := binlog.SplitEvents(r.store.file(t, n)[len(binlog.Magic):])
				if err != nil {
					t.Fatalf("%s: %v", FileName(n), err)
				}
				var types []byte
				for _, ev := range evs {
					types = append(types, ev[4])
				}
				return types
			}
			e1, e2 := events(1), events(2)
			if e1[len(e1)-1] != byte(replication.ROTATE_EVENT) || e2[0] != byte(replication.FORMAT_DESCRIPTION_EVENT) {
				t.Fatalf("file 1 event types %v, file 2 event types %v", e1, e2)
			}
			if g, _ := r.store.FileGTIDs(2); len(g) != 1 || g[0] != r.gtid(3) {
				t.Fatalf("file 2 holds %v", g)
			}
			// After a source change the next append opens a file anyway.
			s2 := r.src
			s2.Addr = "src2:3306"
			if res := r.apply(&SetSource{ExpectedEpoch: 1, NewEpoch: 2, Source: s2}); res.Code != ResultOK {
				t.Fatal(res)
			}
			if res := r.apply(&Rotate{}); res.Code != ResultOK || res.File != 2 || !strings.Contains(res.Message, "source changed") {
				t.Fatalf("rotate after a source change: %+v", res)
			}
		})
	}
}
