package binlog

import (
	"errors"
	"slices"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

const (
	uA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uB = "4e11fa47-71ca-11e1-9e33-c80aa9429562"
)

func goSet(t *testing.T, f Flavor, s string) mysql.GTIDSet {
	t.Helper()
	if f == MySQL() {
		set, err := mysqlGTIDSet(s)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	set, err := parseMariaDBPosition(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestSubtractCountContains(t *testing.T) {
	for _, tc := range []struct {
		f          Flavor
		a, b, diff string
		count      uint64 // Count(a − b)
	}{
		{MySQL(), uA + ":1-10", uA + ":1-10", "", 0},
		{MySQL(), uA + ":1-10", "", uA + ":1-10", 10},
		{MySQL(), uA + ":1-10", uA + ":3-4:8", uA + ":1-2:5-7:9-10", 7},
		{MySQL(), uA + ":1-10," + uB + ":1-3", uA + ":1-20", uB + ":1-3", 3},
		{MySQL(), uA + ":1-5:tag:1-5", uA + ":tag:2-3", uA + ":1-5:tag:1:4-5", 8},
		{MySQL(), uA + ":5", uA + ":1-4:6-9", uA + ":5", 1},
		{MariaDB(), "0-1-10", "0-1-10", "", 0},
		{MariaDB(), "0-1-10,1-2-5", "0-2-7", "0-1-10,1-2-5", 15},
		{MariaDB(), "0-1-10,1-2-5", "0-1-12,1-2-3", "1-2-5", 5},
		{MariaDB(), "0-1-10", "", "0-1-10", 10},
	} {
		d, err := Subtract(goSet(t, tc.f, tc.a), goSet(t, tc.f, tc.b))
		if err != nil {
			t.Fatalf("%s: Subtract(%q, %q): %v", tc.f.Name(), tc.a, tc.b, err)
		}
		if !d.Equal(goSet(t, tc.f, tc.diff)) {
			t.Errorf("%s: Subtract(%q, %q) = %q, want %q", tc.f.Name(), tc.a, tc.b, d.String(), tc.diff)
		}
		if n := Count(d); n != tc.count {
			t.Errorf("%s: Count(%q − %q) = %d, want %d", tc.f.Name(), tc.a, tc.b, n, tc.count)
		}
	}
	if _, err := Subtract(goSet(t, MySQL(), uA+":1"), goSet(t, MariaDB(), "0-1-1")); !errors.Is(err, ErrFlavorMismatch) {
		t.Errorf("Subtract across flavors: %v, want ErrFlavorMismatch", err)
	}
	for _, tc := range []struct {
		f    Flavor
		set  string
		gtid string
		want bool
	}{
		{MySQL(), uA + ":1-10", uA + ":10", true},
		{MySQL(), uA + ":1-10", uA + ":11", false},
		{MySQL(), uA + ":1-10", uA + ":tag:5", false},
		{MySQL(), uA + ":tag:1-10", uA + ":tag:5", true},
		{MySQL(), uA + ":1-10", "junk", false},
		{MariaDB(), "0-1-10", "0-2-9", true}, // server ids are not compared
		{MariaDB(), "0-1-10", "0-1-11", false},
		{MariaDB(), "0-1-10", "1-1-1", false},
		{MariaDB(), "0-1-10", "junk", false},
	} {
		if got := Contains(goSet(t, tc.f, tc.set), tc.gtid); got != tc.want {
			t.Errorf("%s: Contains(%q, %q) = %v, want %v", tc.f.Name(), tc.set, tc.gtid, got, tc.want)
		}
	}
}

func TestGTIDMath(t *testing.T) {
	logged := map[string]bool{"0-1-10": true, "0-1-12": true}
	lookup := func(g string) (bool, error) { return logged[g], nil }
	for _, tc := range []struct {
		f                Flavor
		log, start, held string
		missing          uint64 // Missing(log, held)
		extra            []string
		n                uint64 // CountGTIDs(extra)
		keep             string // KeepGTIDs(held, extra)
		uuid             string
		tail, errant     []string
	}{
		{f: MySQL(), log: uA + ":1-10", held: uA + ":1-10", keep: uA + ":1-10"},
		{f: MySQL(), log: uA + ":1-10", held: uA + ":1-7", missing: 3, keep: uA + ":1-7"},
		{f: MySQL(), log: uA + ":1-10", held: uA + ":1-12," + uB + ":1-2:tag:4", uuid: uA,
			extra: []string{uA + ":11-12", uB + ":1-2", uB + ":tag:4"}, n: 5, keep: uA + ":1-10",
			tail: []string{uA + ":11-12"}, errant: []string{uB + ":1-2", uB + ":tag:4"}},
		{f: MariaDB(), log: "0-1-12", start: "0-1-5", held: "0-1-12", keep: "0-1-12"},
		{f: MariaDB(), log: "0-1-12,1-1-3", start: "0-1-5", held: "0-1-10", missing: 5, keep: "0-1-10"},
		{f: MariaDB(), log: "0-1-12", start: "0-1-5", held: "0-1-4,0-1-13,0-2-7,0-1-12,1-3-2", missing: 0,
			extra: []string{"0-1-13", "0-2-7", "1-3-2"}, n: 3, keep: "0-1-12",
			tail: []string{"0-1-13"}, errant: []string{"0-2-7", "1-3-2"}},
	} {
		name := tc.f.Name() + " " + tc.held
		if n, err := tc.f.Missing(tc.log, tc.held); err != nil || n != tc.missing {
			t.Errorf("%s: Missing = %d, %v; want %d", name, n, err, tc.missing)
		}
		extra, err := tc.f.Extra(tc.log, tc.start, tc.held, lookup)
		if err != nil || !slices.Equal(extra, tc.extra) {
			t.Errorf("%s: Extra = %q, %v; want %q", name, extra, err, tc.extra)
		}
		if n, err := tc.f.CountGTIDs(extra); err != nil || n != tc.n {
			t.Errorf("%s: CountGTIDs = %d, %v; want %d", name, n, err, tc.n)
		}
		if k, err := tc.f.KeepGTIDs(tc.held, extra); err != nil || k != tc.keep {
			t.Errorf("%s: KeepGTIDs = %q, %v; want %q", name, k, err, tc.keep)
		}
		tail, errant, err := tc.f.SplitTail(tc.log, tc.uuid, extra)
		if err != nil || !slices.Equal(tail, tc.tail) || !slices.Equal(errant, tc.errant) {
			t.Errorf("%s: SplitTail = %q, %q, %v; want %q, %q", name, tail, errant, err, tc.tail, tc.errant)
		}
	}
	for _, f := range []Flavor{MySQL(), MariaDB()} {
		if _, err := f.Missing("junk", ""); err == nil {
			t.Errorf("%s: Missing(junk) succeeded", f.Name())
		}
		if _, err := f.Extra("", "", "junk", lookup); err == nil {
			t.Errorf("%s: Extra(junk) succeeded", f.Name())
		}
	}
}

func TestFlavorOfVersion(t *testing.T) {
	for v, want := range map[string]Flavor{
		"10.11.19-MariaDB-log":   MariaDB(),
		"5.5.5-10.11.19-mariadb": MariaDB(),
		"9.7.0":                  MySQL(),
		"8.4.0-binlogsvr":        MySQL(),
		"":                       MySQL(),
	} {
		if got := FlavorOfVersion(v); got != want {
			t.Errorf("FlavorOfVersion(%q) = %s, want %s", v, got.Name(), want.Name())
		}
	}
}
