package dumptest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// CDCWorkload writes row changes with known keys into db.t: 500 inserts in
// 50 transactions, 100 updates in one, 50 deletes in one. It returns the
// changes a CDC client must see, each exactly once, as "insert 7",
// "update 7", "delete 470".
func CDCWorkload(t testing.TB, src *sandbox.Server, db string) map[string]int {
	t.Helper()
	want := map[string]int{}
	exec(t, src, "CREATE DATABASE "+db, "CREATE TABLE "+db+".t (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB")
	for i := 0; i < 50; i++ {
		var vals []string
		for k := 1; k <= 10; k++ {
			id := i*10 + k
			vals = append(vals, fmt.Sprintf("(%d, 'v%d')", id, id))
			want[fmt.Sprintf("insert %d", id)] = 1
		}
		exec(t, src, "INSERT INTO "+db+".t VALUES "+strings.Join(vals, ","))
	}
	exec(t, src, "UPDATE "+db+".t SET v = CONCAT(v, '-u') WHERE id <= 100", "DELETE FROM "+db+".t WHERE id > 450")
	for id := 1; id <= 100; id++ {
		want[fmt.Sprintf("update %d", id)] = 1
	}
	for id := 451; id <= 500; id++ {
		want[fmt.Sprintf("delete %d", id)] = 1
	}
	return want
}

// Total is the number of changes in a CDCWorkload result.
func Total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
