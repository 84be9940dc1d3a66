package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

// The state machine applies commands, refuses entries that are not
// commands the same way everywhere, stops on a newer encoding, wakes its
// watchers on a change only, and a snapshot restores the same state.
func TestStateMachine(t *testing.T) {
	m := newStateMachine()
	update := func(b []byte) (Result, error) {
		t.Helper()
		res, err := m.Update(sm.Entry{Index: 1, Cmd: b})
		if err != nil {
			return Result{}, err
		}
		var r Result
		if err := json.Unmarshal(res.Data, &r); err != nil || uint64(r.Code) != res.Value {
			t.Fatalf("result %d %s: %v", res.Value, res.Data, err)
		}
		return r, nil
	}
	ch := m.wait()
	if r, err := update(Encode(Command{Op: OpAdd, Name: "orders", SourceAddr: "db:3306", Loggers: []uint64{1, 2, 3}})); err != nil || !r.OK() || r.ShardID != 2 {
		t.Fatalf("add: %s, %v", r, err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("an applied command did not wake the watchers")
	}
	ch = m.wait()
	for _, b := range [][]byte{[]byte("garbage"), nil, Encode(Command{Op: OpDrop, Name: "orders"})} {
		if r, err := update(b); err != nil || r.OK() || r.Version != 1 {
			t.Fatalf("update %q: %s, %v; want a refusal at version 1", b, r, err)
		}
	}
	select {
	case <-ch:
		t.Fatal("a refusal woke the watchers")
	default:
	}
	if _, err := update([]byte(`{"v":2,"cmd":{"op":"add"}}`)); !errors.Is(err, ErrNewerEncoding) {
		t.Fatalf("a newer encoding: %v, want ErrNewerEncoding", err)
	}

	var snap bytes.Buffer
	if err := m.SaveSnapshot(&snap, nil, nil); err != nil {
		t.Fatal(err)
	}
	m2 := newStateMachine()
	if err := m2.RecoverFromSnapshot(bytes.NewReader(snap.Bytes()), nil, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(m.state.Load())
	b, _ := json.Marshal(m2.state.Load())
	if !bytes.Equal(a, b) || m2.recoveries.Load() != 1 {
		t.Fatalf("recovered %s, want %s", b, a)
	}
	for in, want := range map[string]string{
		`{"v":2,"state":{}}`: "catalog: written in a newer encoding: upgrade this binary (a snapshot in encoding 2)",
		`{"v":1}`:            "catalog: reading a snapshot: no state",
		`nope`:               "catalog: reading a snapshot: invalid character 'o' in literal null (expecting 'u')",
	} {
		if err := newStateMachine().RecoverFromSnapshot(bytes.NewReader([]byte(in)), nil, nil); err == nil || err.Error() != want {
			t.Errorf("recovering %s: %v, want %s", in, err, want)
		}
	}
}
