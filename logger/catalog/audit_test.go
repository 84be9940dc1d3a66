package catalog

import (
	"fmt"
	"testing"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// TestAuditKeepsTheLast: the trail keeps the last MaxAudit calls, oldest
// first, without moving the catalog's version, and a state handed out
// before an append never changes.
func TestAuditKeepsTheLast(t *testing.T) {
	s := NewState()
	var before *State
	for i := 1; i <= MaxAudit+5; i++ {
		next, res := Apply(s, Command{Op: OpAudit, Audit: &api.AuditRecord{Call: fmt.Sprintf("call %d", i)}})
		if !res.OK() {
			t.Fatalf("audit %d: %s", i, res)
		}
		if i == MaxAudit {
			before = next
		}
		if next.Version != 0 || res.Version != 0 {
			t.Fatalf("audit %d moved the catalog's version to %d (result %d)", i, next.Version, res.Version)
		}
		s = next
	}
	if len(s.Audit) != MaxAudit || s.Audit[0].Call != "call 6" || s.Audit[MaxAudit-1].Call != fmt.Sprintf("call %d", MaxAudit+5) {
		t.Fatalf("trail of %d, from %q to %q", len(s.Audit), s.Audit[0].Call, s.Audit[len(s.Audit)-1].Call)
	}
	if len(before.Audit) != MaxAudit || before.Audit[0].Call != "call 1" {
		t.Fatalf("an earlier state changed: %d records from %q", len(before.Audit), before.Audit[0].Call)
	}
}
