package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

// stateMachine is the catalog's dragonboat state machine: an in-memory
// sm.IStateMachine whose Update is Apply. dragonboat calls Update,
// SaveSnapshot and RecoverFromSnapshot from one goroutine at a time;
// Lookup and the Catalog's reads may run concurrently with them: they load
// the current State, which is never changed once stored.
type stateMachine struct {
	state      atomic.Pointer[State]
	recoveries atomic.Int64 // snapshots recovered from (tests)

	mu      sync.Mutex
	changed chan struct{} // closed, and replaced, when the state changes
}

var _ sm.IStateMachine = (*stateMachine)(nil)

func newStateMachine() *stateMachine {
	m := &stateMachine{changed: make(chan struct{})}
	m.state.Store(NewState())
	return m
}

// set stores s and wakes the watchers.
func (m *stateMachine) set(s *State) {
	m.state.Store(s)
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// wait returns a channel closed at the next change.
func (m *stateMachine) wait() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Update applies one entry. The Result's Value is its Code and its Data the
// Result's JSON. An entry that is not a command is refused (Invalid), the
// same on every replica.
//
// NB: an entry in a newer encoding is an error, which stops the process:
// applying it as a refusal would let this replica's catalog diverge from
// the upgraded replicas' that applied it.
func (m *stateMachine) Update(e sm.Entry) (sm.Result, error) {
	s := m.state.Load()
	var res Result
	c, err := Decode(e.Cmd)
	switch {
	case errors.Is(err, ErrNewerEncoding):
		return sm.Result{}, fmt.Errorf("%w (entry %d)", err, e.Index)
	case err != nil:
		res = refuse(s, Invalid, "%v", err)
	default:
		var next *State
		if next, res = Apply(s, c); next != s {
			m.set(next)
		}
	}
	data, err := json.Marshal(res)
	if err != nil {
		return sm.Result{}, fmt.Errorf("catalog: encoding a result: %w", err)
	}
	return sm.Result{Value: uint64(res.Code), Data: data}, nil
}

// Lookup returns the current *State, whatever the query.
func (m *stateMachine) Lookup(any) (any, error) { return m.state.Load(), nil }

// snapshotEncoding versions the snapshot's JSON.
const snapshotEncoding = 1

type snapshotFile struct {
	V     int    `json:"v"`
	State *State `json:"state"`
}

// SaveSnapshot writes the State as JSON.
func (m *stateMachine) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	if err := json.NewEncoder(w).Encode(snapshotFile{V: snapshotEncoding, State: m.state.Load()}); err != nil {
		return fmt.Errorf("catalog: writing a snapshot: %w", err)
	}
	return nil
}

// RecoverFromSnapshot replaces the State with the snapshot's.
func (m *stateMachine) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	var f snapshotFile
	if err := json.NewDecoder(r).Decode(&f); err != nil {
		return fmt.Errorf("catalog: reading a snapshot: %w", err)
	}
	switch {
	case f.V > snapshotEncoding:
		return fmt.Errorf("%w (a snapshot in encoding %d)", ErrNewerEncoding, f.V)
	case f.State == nil:
		return errors.New("catalog: reading a snapshot: no state")
	}
	if f.State.Sources == nil {
		f.State.Sources = map[string]*Source{}
	}
	m.set(f.State)
	m.recoveries.Add(1)
	return nil
}

// Close does nothing: the state is in memory.
func (m *stateMachine) Close() error { return nil }
