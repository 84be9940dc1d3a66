package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    uint64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1 << 10, "1.0 KiB"}, {3 << 19, "1.5 MiB"}, {5 << 30, "5.0 GiB"}} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q; want %q", c.n, got, c.want)
		}
	}
}

func TestOperationFinished(t *testing.T) {
	for step, want := range map[string]bool{StepStarted: false, StepFenced: false, StepPromoted: false, StepDone: true, StepAborted: true} {
		if got := (&Operation{Step: step}).Finished(); got != want {
			t.Errorf("step %s: Finished() = %v; want %v", step, got, want)
		}
	}
}

// TestSourceJSON: Source has no JSON tags; the failover records in the log
// store its fields under their Go names, so they must stay so.
func TestSourceJSON(t *testing.T) {
	b, err := json.Marshal(Operation{OldSource: Source{Addr: "h:3306", UUID: "u", ServerID: 7, Flavor: "mysql"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"old_source":{"Addr":"h:3306","UUID":"u","ServerID":7,"Flavor":"mysql"}`; !strings.Contains(string(b), want) {
		t.Fatalf("%s does not hold %s", b, want)
	}
}
