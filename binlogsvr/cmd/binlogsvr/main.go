// Command binlogsvr runs one member of a binlog server fleet.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "binlogsvr:", err)
		if errors.Is(err, learner.ErrRemoved) {
			os.Exit(binlogsvr.ExitRemoved)
		}
		os.Exit(1)
	}
}

// parseArgs parses the command line and the --config file into a Config;
// done when --print-config printed it to stdout and nothing is to run.
func parseArgs(args []string, stdout io.Writer) (cfg binlogsvr.Config, done bool, err error) {
	cfg = binlogsvr.DefaultConfig()
	fs := pflag.NewFlagSet("binlogsvr", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: binlogsvr --id N --data-dir DIR --raft-addr HOST:PORT (--members 1=HOST:PORT,... | --join) [flags]\n\n")
		fs.PrintDefaults()
		fmt.Fprint(os.Stderr, exitCodes)
	}
	cfg.RegisterFlags(fs)
	configFile := fs.String("config", "", "a TOML file of flags (keys are the flags' names without --; the command line wins; no passwords)")
	printCfg := fs.Bool("print-config", false, "print the effective configuration (flags, --config file, defaults) as a config file, and exit")
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if *configFile != "" {
		if err := applyConfigFile(fs, *configFile); err != nil {
			return cfg, false, err
		}
	}
	if *printCfg {
		return cfg, true, printConfig(stdout, fs)
	}
	return cfg, false, nil
}

// exitCodes ends --help.
const exitCodes = `
Exit codes:
  0   stopped by SIGTERM or SIGINT
  1   bad flags, or the member could not start (the message says why)
  75  the data directory's disk is full: restart once space is freed
  76  the log holds an entry a newer binlogsvr wrote: install the newer version on this member, then restart
  78  this member was removed from the group (binlogctl remove, or the old id of a demoted logger), or the
      data directory belongs to a removed member: restarting does not help; wipe --data-dir and add the
      machine again under a new id (systemd: RestartPreventExitStatus=78)
`

func run(args []string) error {
	// NB: the data directory holds every row the source wrote: directories
	// 0700, files 0600, whatever dragonboat and Pebble ask for.
	syscall.Umask(0o077)
	cfg, done, err := parseArgs(args, os.Stdout)
	if err != nil || done {
		return err
	}
	if err := cfg.LoadSecrets(os.Getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("member", cfg.Log.ReplicaID)
	logger.RouteDragonboatLogs(log, max(level, slog.LevelWarn))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg.Log.Disk.OnFull = binlogsvr.ExitOnDiskFull(log)
	cfg.Log.OnNewerEncoding = binlogsvr.ExitOnNewerEncoding(log)
	// NB: the notifier runs from before New: its watchdog pings cover the
	// log's opening; a member is alive while it starts, and once started
	// while its log is open.
	var srv atomic.Pointer[binlogsvr.Server]
	ready := make(chan struct{})
	n := &notifier{log: log, ready: ready, alive: func() bool {
		s := srv.Load()
		return s == nil || s.Alive()
	}}
	nctx, ncancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.Run(nctx) }()
	// NB: STOPPING=1 goes out when the member stops, whatever the cause.
	defer wg.Wait()
	defer ncancel()
	s, err := binlogsvr.New(cfg, log)
	if err != nil {
		return err
	}
	srv.Store(s)
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-s.Ready():
			close(ready)
		case <-nctx.Done():
		}
	}()
	return s.Run(ctx)
}
