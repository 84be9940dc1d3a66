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
	ready <-chan struct{} // binlogsvr.Server.Ready
	// alive reports whether the member still works (its log open); a
	// watchdog ping is sent only then, so a wedged member gets restarted.
	alive func() bool
}

// Run sends READY=1 and the watchdog pings until ctx ends, then STOPPING=1.
func (n *notifier) Run(ctx context.Context) {
	defer n.notify("STOPPING=1")
	// NB: the interval comes from $WATCHDOG_USEC, set by systemd only for
	// this process ($WATCHDOG_PID); zero when no watchdog is asked for.
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings ignored", "err", err)
	}
	select {
	case <-ctx.Done():
		return
	case <-n.ready:
	}
	n.notify(daemon.SdNotifyReady + "\nSTATUS=serving")
	if interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
