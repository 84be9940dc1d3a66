package failover

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// hookEnvPrefix starts the name of every variable a hook is given.
const hookEnvPrefix = "BINLOGSVR_FAILOVER_"

// hookEnv is the environment a hook runs with. Pure.
//
//   - BINLOGSVR_FAILOVER_HOOK: pre or post;
//   - _ID, _KIND (failover or switchover), _FORCED;
//   - _OLD_SOURCE: the source being replaced;
//   - _NEW_SOURCE: the promoted replica (pre: the operator's or the
//     switchover's target, empty when the fleet has yet to choose);
//   - _EPOCH: the log's epoch (pre: the current one; post: the new
//     source's);
//   - _GTIDS: the log's GTID state (post, and pre once fenced: at the
//     fence, which is what the new source took over from).
//
// cur returns the log's current GTID state and epoch.
func hookEnv(op *Operation, cur func() (string, uint64)) []string {
	gtids, epoch := cur()
	if op.LogGTIDs != "" {
		gtids = op.LogGTIDs
	}
	if op.NewEpoch != 0 {
		epoch = op.NewEpoch
	}
	hook, target := "pre", op.Target
	if op.Step == StepResumed || op.Finished() {
		hook = "post"
	}
	if target == "" {
		target = op.To
	}
	return []string{
		hookEnvPrefix + "HOOK=" + hook,
		hookEnvPrefix + "ID=" + op.ID,
		hookEnvPrefix + "KIND=" + op.Kind,
		hookEnvPrefix + "OLD_SOURCE=" + op.OldSource.Addr,
		hookEnvPrefix + "NEW_SOURCE=" + target,
		hookEnvPrefix + "EPOCH=" + strconv.FormatUint(epoch, 10),
		hookEnvPrefix + "GTIDS=" + gtids,
		hookEnvPrefix + "FORCED=" + strconv.FormatBool(op.Forced),
	}
}

// hook runs cmd (if set) for op, bounded by the hook timeout.
func (m *Manager) hook(ctx context.Context, cmd string, op *Operation) (string, error) {
	if cmd == "" {
		return "", nil
	}
	hctx, cancel := context.WithTimeout(ctx, m.cfg.HookTimeout)
	defer cancel()
	st, err := m.deps.Log.State()
	if err != nil {
		return "", fmt.Errorf("failover: hook %s not run: %w", cmd, err)
	}
	env := hookEnv(op, func() (string, uint64) { return st.GTIDs, st.Epoch })
	out, err := m.deps.RunHook(hctx, cmd, env)
	out = strings.TrimSpace(out) // NB: it goes into one-line audit records
	if err != nil {
		m.log.Warn("failover hook failed", "cmd", cmd, "err", err, "output", out)
	}
	return out, err
}

// hookBaseEnv is the daemon's environment without the admin password and
// without inherited BINLOGSVR_FAILOVER_* variables. Pure.
// NB: the password variable shares the hooks' prefix: a hook that logs its
// BINLOGSVR_FAILOVER_* variables must not log the password.
func hookBaseEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, hookEnvPrefix) && !strings.HasPrefix(kv, EnvAdminPassword+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// runHook runs cmd with sh -c; the output is capped at 4 KiB.
func runHook(ctx context.Context, cmd string, env []string) (string, error) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Env = append(hookBaseEnv(os.Environ()), env...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	b := out.Bytes()
	if len(b) > 4096 {
		b = b[:4096]
	}
	if err != nil {
		return string(b), fmt.Errorf("hook failed: %w", err) // NB: the caller logs cmd
	}
	return string(b), nil
}
