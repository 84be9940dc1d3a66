package semisync

import "testing"

func TestIsDML(t *testing.T) {
	for q, want := range map[string]bool{
		"INSERT INTO t VALUES (1)":              true,
		"insert into t values (1)":              true,
		"  /* app */ UPDATE t SET a=1":          true,
		"-- x\nDELETE FROM t":                   true,
		"# x\nREPLACE INTO t VALUES (1)":        true,
		"LOAD DATA INFILE 'f' INTO TABLE t":     true,
		"WITH c AS (SELECT 1) UPDATE t SET a=1": true,
		"(INSERT INTO t VALUES (1))":            true,
		"BEGIN":                                 false,
		"COMMIT":                                false,
		"SAVEPOINT s1":                          false,
		"ROLLBACK TO SAVEPOINT s1":              false,
		"CREATE TABLE insert_log (a int)":       false,
		"INSERTED":                              false,
		"XA START 'x'":                          false,
		"/* unterminated":                       false,
	} {
		if got := isDML([]byte(q)); got != want {
			t.Errorf("isDML(%q) = %v, want %v", q, got, want)
		}
	}
}
