package failover

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// hookEnv is the environment a hook runs with.
func hookEnv(op *Operation, st func() (string, uint64)) []string {
	gtids, epoch := st()
	return []string{
		"BINLOGSVR_FAILOVER_ID=" + op.ID,
		"BINLOGSVR_FAILOVER_KIND=" + op.Kind,
		"BINLOGSVR_FAILOVER_OLD_SOURCE=" + op.OldSource.Addr,
		"BINLOGSVR_FAILOVER_NEW_SOURCE=" + op.Target,
		"BINLOGSVR_FAILOVER_EPOCH=" + strconv.FormatUint(epoch, 10),
		"BINLOGSVR_FAILOVER_GTIDS=" + gtids,
		"BINLOGSVR_FAILOVER_FORCED=" + strconv.FormatBool(op.Forced),
	}
}

// hook runs cmd (if set) for op, bounded by the hook timeout.
func (m *Manager) hook(ctx context.Context, cmd string, op *Operation) (string, error) {
	if cmd == "" {
		return "", nil
	}
	hctx, cancel := context.WithTimeout(ctx, m.cfg.HookTimeout)
	defer cancel()
	env := hookEnv(op, func() (string, uint64) { st, _ := m.deps.Log.State(); return st.GTIDs, st.Epoch })
	out, err := m.deps.RunHook(hctx, cmd, env)
	if err != nil {
		m.log.Warn("failover hook failed", "cmd", cmd, "err", err, "output", out)
	}
	return out, err
}

// runHook runs cmd with sh -c; the output is capped at 4 KiB.
func runHook(ctx context.Context, cmd string, env []string) (string, error) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	b := out.Bytes()
	if len(b) > 4096 {
		b = b[:4096]
	}
	if err != nil {
		return string(b), fmt.Errorf("hook %q: %w", cmd, err)
	}
	return string(b), nil
}
