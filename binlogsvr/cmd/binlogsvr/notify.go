package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier speaks systemd's notify protocol (Type=notify in
// binlogsvr.service) over $NOTIFY_SOCKET: READY=1 once the member serves,
// WATCHDOG=1 every half WatchdogSec while the member is alive, STOPPING=1
// when it begins to shut down. Without $NOTIFY_SOCKET (not started by
// systemd) every call is a no-op.
type notifier struct {
	log   *slog.Logger
	ready <-chan struct{} // closed once the member serves (binlogsvr.Server.Ready)
	// alive reports whether the member still works; a watchdog ping is sent
	// only then, so a wedged member gets restarted.
	alive func() bool
}

// Run sends the watchdog pings and READY=1 until ctx ends, then
// STOPPING=1.
//
// NB: the pings start with the process, before READY=1: opening a large
// log (replaying raft entries) can outlast WatchdogSec, and systemd may
// arm the watchdog as soon as the process starts.
func (n *notifier) Run(ctx context.Context) {
	defer n.notify("STOPPING=1")
	// NB: the interval comes from $WATCHDOG_USEC, set by systemd only for
	// this process ($WATCHDOG_PID); zero when no watchdog is asked for.
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings ignored", "err", err)
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		tick = t.C
	}
	ready := n.ready
	for {
		select {
		case <-ctx.Done():
			return
		case <-ready:
			n.notify(daemon.SdNotifyReady + "\nSTATUS=serving")
			ready = nil
		case <-tick:
			if n.alive() {
				n.notify(daemon.SdNotifyWatchdog)
			}
		}
	}
}

func (n *notifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notify", "state", state, "err", err)
	}
}
