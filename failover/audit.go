package failover

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
)

// Errors.
var (
	ErrNoCandidate = errors.New("failover: no eligible candidate")
	ErrNotLeader   = errors.New("failover: this member does not lead the group")
	ErrBusy        = errors.New("failover: another failover or switchover is running")
	ErrVetoed      = errors.New("failover: the pre-failover hook vetoed")
	ErrNotCaughtUp = errors.New("failover: the candidate has not applied the whole log")
	ErrErrant      = errors.New("failover: the server holds transactions the log does not")
	// ErrUnknownServer: the fleet logs in only to the sources the log has
	// recorded and to its recorded candidates.
	ErrUnknownServer = errors.New("failover: not a server the log records")
	// ErrBadCandidate: a candidate the log must not store.
	ErrBadCandidate = errors.New("failover: bad candidate")
)

// Meta keys the failover keeps in the log.
const (
	MetaOperation       = "failover.operation"  // the unfinished (or last) operation, JSON Operation
	MetaLast            = "failover.last"       // the last finished operation, JSON Operation
	MetaAuditPrefix     = "failover.audit."     // + 20-digit time: JSON Record
	MetaCandidatePrefix = "failover.candidate." // + address: JSON Candidate
)

// recordAddr is the server address in a source's text form as audit
// records and status pages hold it (Source.String: "fenced:" + address for
// a fence).
func recordAddr(text string) string { return strings.TrimPrefix(text, logger.FencedPrefix) }

// Operation kinds.
const (
	KindFailover   = api.KindFailover
	KindSwitchover = api.KindSwitchover
)

// Steps of an operation, in order. An operation's Step is the last one
// completed.
const (
	StepStarted  = api.StepStarted  // decided; pre-failover hook passed
	StepFenced   = api.StepFenced   // SetSource to the fence's epoch applied
	StepChosen   = api.StepChosen   // candidate chosen (Target)
	StepCaughtUp = api.StepCaughtUp // the target applied the whole log; its replication stopped
	StepPromoted = api.StepPromoted // writable, semi-sync source on, SetSource to it applied
	StepResumed  = api.StepResumed  // the ingest streams from the new source
	StepDone     = api.StepDone     // hooks ran; finished
	StepAborted  = api.StepAborted  // dropped without a source change
)

// Operation is one failover or switchover as recorded in the log, so that
// a new leader can finish it.
type Operation = api.Operation

// Record is one audit record: one step of one operation, or a decision
// not to act.
type Record = api.Record

// auditKey is the Meta key of a record made at t by leader.
func auditKey(t time.Time, leader uint64) string {
	return fmt.Sprintf("%s%020d.%d", MetaAuditPrefix, t.UnixNano(), leader)
}

// ParseHistory decodes the audit records of a MetaPrefix(MetaAuditPrefix)
// read, oldest first.
func ParseHistory(m map[string][]byte) ([]Record, error) {
	out := make([]Record, 0, len(m))
	for k, v := range m {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("failover: audit record %s: %v", k, err)
		}
		r.Key = k
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
