package dumptest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// ServerArgs are the extra server arguments the workload needs (a 20 MiB
// row): use them for sources and replicas.
var ServerArgs = []string{"--max-allowed-packet=256M"}

// WorkloadOptions sizes Workload.
type WorkloadOptions struct {
	// BigRow adds one row of this many bytes (0: none): 20 MiB makes a row
	// event larger than one 16 MiB packet.
	BigRow int
	// BigTxnRows adds one transaction inserting this many rows (0: none).
	BigTxnRows int
}

// Workload runs a mixed workload in database db of src: inserts, updates,
// deletes, DDL, JSON, BLOBs, and optionally a big row and a big
// transaction. It returns the tables it leaves, as db.table.
func Workload(t testing.TB, src *sandbox.Server, db string, o WorkloadOptions) []string {
	t.Helper()
	q := func(format string, args ...any) string {
		format = strings.ReplaceAll(format, "{db}", db)
		if len(args) == 0 {
			return format
		}
		return fmt.Sprintf(format, args...)
	}
	exec(t, src,
		q("CREATE DATABASE {db}"),
		q("CREATE TABLE {db}.t1 (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64), n BIGINT, f DOUBLE, d DECIMAL(12,3), ts DATETIME(6), j JSON, b BLOB) ENGINE=InnoDB"),
		q("CREATE TABLE {db}.digits (d INT PRIMARY KEY) ENGINE=InnoDB"),
		q("INSERT INTO {db}.digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)"),
	)
	for i := 0; i < 20; i++ {
		var vals []string
		for k := 0; k < 10; k++ {
			n := i*10 + k
			vals = append(vals, fmt.Sprintf("('name-%d', %d, %d.5, %d.125, '2024-01-02 03:04:05.%06d', '{\"i\": %d, \"s\": \"v%d\", \"a\": [1, 2, %d]}', UNHEX('%02x00ff%02x'))",
				n, n*1000, n, n, n, n, n, n, n%256, (n*7)%256))
		}
		exec(t, src, q("INSERT INTO {db}.t1 (name, n, f, d, ts, j, b) VALUES ")+strings.Join(vals, ","))
	}
	exec(t, src,
		q("UPDATE {db}.t1 SET n = n * 2, name = CONCAT(name, '-u') WHERE id % 3 = 0"),
		q("DELETE FROM {db}.t1 WHERE id % 7 = 0"),
		q("ALTER TABLE {db}.t1 ADD COLUMN extra VARCHAR(10) DEFAULT 'x'"),
		q("UPDATE {db}.t1 SET j = JSON_SET(j, '$.k', id), extra = 'y' WHERE id < 50"),
		q("UPDATE {db}.t1 SET b = UNHEX(REPEAT('00ff7f', 3000)) WHERE id % 5 = 0"),
		q("CREATE TABLE {db}.t2 (k VARCHAR(20) PRIMARY KEY, v TEXT) ENGINE=InnoDB"),
		q("INSERT INTO {db}.t2 VALUES ('a', 'one'), ('b', 'two'), ('c', NULL)"),
		q("RENAME TABLE {db}.t2 TO {db}.t3"),
		q("CREATE TABLE {db}.gone (x INT) ENGINE=InnoDB"),
		q("DROP TABLE {db}.gone"),
	)
	tables := []string{db + ".t1", db + ".digits", db + ".t3"}
	if o.BigRow > 0 {
		exec(t, src,
			q("CREATE TABLE {db}.big (id INT PRIMARY KEY, v LONGBLOB) ENGINE=InnoDB"),
			q("INSERT INTO {db}.big VALUES (1, REPEAT('x', %d))", o.BigRow),
			q("INSERT INTO {db}.big VALUES (2, 'small')"),
		)
		tables = append(tables, db+".big")
	}
	if o.BigTxnRows > 0 {
		exec(t, src,
			q("CREATE TABLE {db}.many (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB"),
			q("INSERT INTO {db}.many SELECT a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d, CONCAT('row-', f.d, e.d, c.d, b.d, a.d) "+
				"FROM {db}.digits a, {db}.digits b, {db}.digits c, {db}.digits e, {db}.digits f WHERE a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d < %d", min(o.BigTxnRows, 100000)),
			q("DELETE FROM {db}.many WHERE id < 100"),
		)
		tables = append(tables, db+".many")
	}
	return tables
}
