package catalog

import (
	"fmt"
	"slices"
	"testing"
)

func TestPlace(t *testing.T) {
	up := func(id uint64, shards int) HostLoad { return HostLoad{ID: id, Shards: shards, Up: true} }
	down := func(id uint64, shards int) HostLoad { return HostLoad{ID: id, Shards: shards} }
	for _, tc := range []struct {
		name    string
		hosts   []HostLoad
		n       int
		exclude []uint64
		want    []uint64
		err     string
	}{
		{name: "empty fleet, ties by id", hosts: []HostLoad{up(3, 0), up(1, 0), up(2, 0), up(4, 0)}, n: 3, want: []uint64{1, 2, 3}},
		{name: "least loaded first", hosts: []HostLoad{up(1, 4), up(2, 1), up(3, 0), up(4, 2), up(5, 1)}, n: 3, want: []uint64{3, 2, 5}},
		{name: "down hosts skipped", hosts: []HostLoad{down(1, 0), up(2, 3), up(3, 2), up(4, 1), down(5, 0)}, n: 3, want: []uint64{4, 3, 2}},
		{name: "excluded hosts skipped", hosts: []HostLoad{up(1, 0), up(2, 0), up(3, 0), up(4, 5), up(5, 5)}, n: 2, exclude: []uint64{1, 2, 3}, want: []uint64{4, 5}},
		{name: "five", hosts: []HostLoad{up(1, 1), up(2, 1), up(3, 1), up(4, 0), up(5, 0), up(6, 0)}, n: 5, want: []uint64{4, 5, 6, 1, 2}},
		{name: "host id out of range", hosts: []HostLoad{up(0, 0), up(1024, 0), up(1, 0)}, n: 2, err: "catalog: 2 hosts wanted, 1 are up and free"},
		{name: "too few up", hosts: []HostLoad{up(1, 0), up(2, 0), down(3, 0)}, n: 3, err: "catalog: 3 hosts wanted, 2 are up and free"},
		{name: "listed twice", hosts: []HostLoad{up(1, 0), up(1, 0), up(2, 0)}, n: 1, err: "catalog: host 1 is listed twice"},
		{name: "none wanted", hosts: []HostLoad{up(1, 0)}, n: 0, err: "catalog: placing 0 hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Place(tc.hosts, tc.n, tc.exclude...)
			if fmt.Sprint(err) != fmt.Sprint(errOrNil(tc.err)) || !slices.Equal(got, tc.want) {
				t.Fatalf("Place = %v, %v; want %v, %v", got, err, tc.want, tc.err)
			}
			// The order of the input does not matter.
			rev := slices.Clone(tc.hosts)
			slices.Reverse(rev)
			if again, _ := Place(rev, tc.n, tc.exclude...); !slices.Equal(again, got) {
				t.Fatalf("Place of the reversed hosts = %v, want %v", again, got)
			}
		})
	}
}

func errOrNil(s string) error {
	if s == "" {
		return nil
	}
	return fmt.Errorf("%s", s)
}

// Loads counts what the catalog places on each host, a move's incoming
// host from its first step, and lists hosts not known to be up as down.
func TestLoads(t *testing.T) {
	s := NewState()
	for _, c := range []Command{
		{Op: OpAdd, Name: "a", SourceAddr: "db:1", Loggers: []uint64{1, 2, 3}, Learners: []uint64{4}},
		{Op: OpAdd, Name: "b", SourceAddr: "db:2", Loggers: []uint64{2, 3, 4}},
		{Op: OpMoveBegin, Name: "b", From: 4, To: 5},
	} {
		var res Result
		if s, res = Apply(s, c); !res.OK() {
			t.Fatalf("%+v: %s", c, res)
		}
	}
	got := Loads(s, map[uint64]bool{1: true, 2: true, 3: false, 6: true})
	want := []HostLoad{{1, 1, true}, {2, 2, true}, {3, 2, false}, {4, 2, false}, {5, 1, false}, {6, 0, true}}
	if !slices.Equal(got, want) {
		t.Fatalf("Loads = %v, want %v", got, want)
	}
	if p, err := Place(got, 2); err != nil || !slices.Equal(p, []uint64{6, 1}) {
		t.Fatalf("Place = %v, %v; want [6 1]", p, err)
	}
}

// Decode refuses what is not a command, and a newer encoding with
// ErrNewerEncoding.
func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{`{"v":1,"cmd":{"op":"drop","name":"a"}}`, ""},
		{`not json`, "catalog: decoding a command: invalid character 'o' in literal null (expecting 'u')"},
		{`{"cmd":{"op":"drop"}}`, "catalog: decoding a command: no encoding version"},
		{`{"v":2,"cmd":{"op":"drop"}}`, "catalog: written in a newer encoding: upgrade this binary (a command in encoding 2; this binary reads up to 1)"},
	} {
		_, err := Decode([]byte(tc.in))
		if fmt.Sprint(err) != fmt.Sprint(errOrNil(tc.err)) {
			t.Errorf("Decode(%s) = %v, want %v", tc.in, err, tc.err)
		}
	}
}
