package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// watchFlags are --watch and --interval of the commands that show state
// (status, members, failover status): an operator follows a backfill, a
// catch-up or a snapshot send without a shell loop.
type watchFlags struct {
	on    *bool
	every *time.Duration
}

func addWatchFlags(fs *pflag.FlagSet) watchFlags {
	return watchFlags{
		on:    fs.Bool("watch", false, "show it again every --interval until interrupted (Ctrl-C); with --json, one object after another"),
		every: fs.Duration("interval", 2*time.Second, "how often --watch refreshes"),
	}
}

// run renders once, or with --watch every interval until SIGINT or
// SIGTERM. A failed refresh under --watch is shown and retried: a member
// that stops answering during a failover is what one watches for.
func (wf watchFlags) run(stdout, stderr io.Writer, title string, render func(ctx context.Context, w io.Writer) error) error {
	if !*wf.on {
		return render(context.Background(), stdout)
	}
	if *wf.every < 100*time.Millisecond {
		return usageError{fmt.Errorf("--interval %v is too short: 100ms at least", *wf.every)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return watch(ctx, stdout, stderr, title, *wf.every, isTerminal(stdout), render)
}

// watch is run's loop: on a terminal each refresh replaces the screen
// under a header line; otherwise refreshes follow one another, each text
// one after a "== time" line (JSON ones bare, so the output stays a stream
// of objects).
func watch(ctx context.Context, stdout, stderr io.Writer, title string, every time.Duration, tty bool, render func(ctx context.Context, w io.Writer) error) error {
	for {
		var b bytes.Buffer
		err := render(ctx, &b)
		if err != nil && ctx.Err() != nil {
			return nil // NB: interrupted mid-refresh: nothing to show
		}
		now := time.Now().UTC().Format("2006-01-02 15:04:05")
		switch {
		case tty:
			fmt.Fprintf(stdout, "\033[H\033[2J%s   every %v   %s UTC   (Ctrl-C to stop)\n\n", title, every, now)
		case b.Len() > 0 && b.Bytes()[0] != '{':
			fmt.Fprintf(stdout, "== %s UTC\n", now)
		}
		_, _ = stdout.Write(b.Bytes())
		if err != nil {
			if tty {
				fmt.Fprintf(stdout, "\nerror: %v (retrying every %v)\n", err, every)
			} else {
				fmt.Fprintf(stderr, "binlogctl: %s UTC: %v (retrying every %v)\n", now, err, every)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
