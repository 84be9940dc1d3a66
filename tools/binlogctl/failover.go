package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// failoverCommands returns the failover commands: promote
// (--to REPLICA: switchover; without --to: cmdPromoteMember of members.go),
// failover, history, rejoin-check, rejoin, candidates. It also wraps
// status, adding the lease, the epoch and the last failover.
func failoverCommands() map[string]command {
	return map[string]command{
		"promote":      cmdPromote,
		"failover":     cmdFailover,
		"history":      cmdHistory,
		"rejoin-check": cmdRejoinCheck,
		"rejoin":       cmdRejoin,
		"candidates":   cmdCandidates,
		"status":       cmdStatusWithFailover,
	}
}

// foSend calls a failover endpoint; ctx bounds it (see client.do).
func (c *client) foSend(ctx context.Context, method, path string, form url.Values, v any) error {
	return c.do(ctx, method, path, form, v, 0)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cmdPromote: with --to it is a switchover; otherwise a learner promotion.
func cmdPromote(c *client, args []string, stdout, stderr io.Writer) error {
	to, rest, ok := flagValue(args, "to")
	if !ok {
		return cmdPromoteMember(c, args, stdout, stderr)
	}
	fs := pflag.NewFlagSet("promote", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("wait", 5*time.Minute, "how long to wait for the switchover")
	asJSON := fs.Bool("json", false, "print the operation as JSON")
	if err := fs.Parse(rest); err != nil {
		return usageError{err}
	}
	if to == "" {
		return usageFor("promote --to", "--to needs a replica's host:port")
	}
	return runOp(c, api.KindSwitchover, url.Values{"to": {to}, "timeout": {timeout.String()}}, *timeout, *asJSON, stdout)
}

// flagValue finds --name V or --name=V in args and returns the rest.
func flagValue(args []string, name string) (string, []string, bool) {
	for i, a := range args {
		switch {
		case a == "--"+name:
			v := ""
			if i+1 < len(args) {
				v = args[i+1]
				return v, append(append([]string(nil), args[:i]...), args[i+2:]...), true
			}
			return v, args[:i], true
		case strings.HasPrefix(a, "--"+name+"="):
			return strings.TrimPrefix(a, "--"+name+"="), append(append([]string(nil), args[:i]...), args[i+1:]...), true
		}
	}
	return "", args, false
}

func cmdFailover(c *client, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		return cmdFailoverStatus(c, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "forget-fence" {
		return cmdForgetFence(c, args[1:], stdout, stderr)
	}
	fs := pflag.NewFlagSet("failover", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "the candidate to promote (default: the most caught-up one)")
	force := fs.Bool("force", false, "fail over even though the source holds its lease, or within the anti-flap window")
	timeout := fs.Duration("wait", 5*time.Minute, "how long to wait for the failover")
	asJSON := fs.Bool("json", false, "print the operation as JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("failover takes no argument (got %q): binlogctl failover [--force] [--to ADDR], binlogctl failover status, or binlogctl failover forget-fence HOST:PORT", fs.Args())}
	}
	return runOp(c, api.KindFailover, url.Values{"to": {*to}, "force": {strconv.FormatBool(*force)}, "timeout": {timeout.String()}}, *timeout, *asJSON, stdout)
}

// cmdForgetFence is binlogctl failover forget-fence HOST:PORT: the fleet
// stops retrying the fence of an old source that is gone for good.
func cmdForgetFence(c *client, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("failover forget-fence", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the dropped pending fence as JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageFor("failover forget-fence", "HOST:PORT is the old source's, as binlogctl failover status lists it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var p api.PendingFence
	if err := c.foSend(ctx, http.MethodPost, "/failover/forget-fence", url.Values{"addr": {fs.Arg(0)}}, &p); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, p)
	}
	fmt.Fprintf(stdout, "pending fence of %s forgotten (pending since %s, %d attempts): the fleet no longer fences it; if it comes back, make it read-only by hand\n",
		p.Addr, p.Since.UTC().Format(time.RFC3339), p.Attempts)
	return nil
}

func runOp(c *client, kind string, form url.Values, timeout time.Duration, asJSON bool, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	var op api.Operation
	err := c.foSend(ctx, http.MethodPost, "/failover/"+kind, form, &op)
	if asJSON && op.ID != "" {
		_ = printJSON(stdout, op)
	} else if op.ID != "" {
		fmt.Fprintf(stdout, "%s %s: step %s: %s -> %s, epoch %d\n%s\n", op.Kind, op.ID, op.Step, op.OldSource.Addr, dash(op.Target), op.NewEpoch, op.Message)
	}
	if err != nil {
		return err
	}
	return nil
}

func cmdHistory(c *client, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("history", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the records as JSON")
	last := fs.Int("last", 0, "only the last N records")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	var rs []api.Record
	if err := c.get(context.Background(), "/failover/history", &rs); err != nil {
		return err
	}
	if *last > 0 && len(rs) > *last {
		rs = rs[len(rs)-*last:]
	}
	if *asJSON {
		return printJSON(stdout, rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(stdout, "no failover, switchover or rejoin recorded")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tOPERATION\tSTEP\tOUTCOME\tEPOCH\tLEADER\tELAPSED\tMESSAGE")
	for _, r := range rs {
		op := r.OpID
		if op == "" {
			op = r.Kind
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Time.UTC().Format("2006-01-02 15:04:05.000"), op, r.Step, r.Outcome, r.Epoch, r.Leader, dash(r.Elapsed), r.Message)
	}
	return tw.Flush()
}

func cmdRejoinCheck(c *client, args []string, stdout, stderr io.Writer) error {
	return rejoin(c, args, stdout, stderr, false)
}

func cmdRejoin(c *client, args []string, stdout, stderr io.Writer) error {
	return rejoin(c, args, stdout, stderr, true)
}

func rejoin(c *client, args []string, stdout, stderr io.Writer, do bool) error {
	name := "rejoin-check"
	if do {
		name = "rejoin"
	}
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageFor(name, "HOST:PORT is the old source's")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rep api.RejoinReport
	var err error
	q := url.Values{"server": {fs.Arg(0)}}
	if do {
		err = c.foSend(ctx, http.MethodPost, "/failover/rejoin", q, &rep)
	} else {
		err = c.get(ctx, "/failover/rejoin-check?"+q.Encode(), &rep)
	}
	if rep.Server != "" {
		if *asJSON {
			_ = printJSON(stdout, rep)
		} else {
			fmt.Fprintf(stdout, "Server:         %s (%s, server_id %d)\n", rep.Server, dash(rep.Flavor), rep.ServerID)
			fmt.Fprintf(stdout, "Its GTIDs:      %s\n", dash(rep.ServerGTIDs))
			fmt.Fprintf(stdout, "The log's:      %s\n", dash(rep.LogGTIDs))
			if len(rep.Unacknowledged) == 0 {
				fmt.Fprintln(stdout, "Unacknowledged: none")
			} else {
				fmt.Fprintf(stdout, "Unacknowledged: %d transactions, never ACKed, safe to discard:\n", max(rep.Transactions, uint64(len(rep.Unacknowledged))))
				for _, g := range rep.Unacknowledged {
					fmt.Fprintf(stdout, "  %s\n", g)
				}
				fmt.Fprintf(stdout, "Without them:   %s\n", dash(rep.Keep))
			}
			fmt.Fprintf(stdout, "Next:           %s\n", rep.Advice)
		}
	}
	if err != nil {
		return err
	}
	if !do && !rep.Safe && !rep.IsSource {
		return fmt.Errorf("%s holds %d transactions the log does not: it may not rejoin yet", rep.Server, max(rep.Transactions, uint64(len(rep.Unacknowledged))))
	}
	return nil
}

func cmdCandidates(c *client, args []string, stdout, stderr io.Writer) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := pflag.NewFlagSet("candidates "+sub, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	prio := fs.Int("priority", 0, "add: priority (higher wins ties)")
	never := fs.Bool("never-promote", false, "add: never promote it")
	user := fs.String("user", "", "add: its admin account, with the fleet's admin password (default: the fleet's --failover-admin-user)")
	cred := fs.String("credential", "", "add: the NAME of its account in every member's --failover-credentials-file (the log stores only the name)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch sub {
	case "list":
		var cs []api.CandidateState
		if err := c.get(ctx, "/failover/candidates", &cs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, cs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDR\tPRIORITY\tELIGIBLE\tMISSING\tGTIDS\tREASON")
		for _, s := range cs {
			el := "yes"
			if !s.Eligible {
				el = "no"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", s.Addr, s.Priority, el, s.Missing, dash(s.GTIDs), s.Reason)
		}
		return tw.Flush()
	case "add":
		if fs.NArg() != 1 {
			return usageError{fmt.Errorf("candidates add needs host:port")}
		}
		if envOr("BINLOGCTL_CANDIDATE_PASSWORD", "") != "" {
			return usageError{fmt.Errorf("$BINLOGCTL_CANDIDATE_PASSWORD is no longer used: a candidate's password is never stored in the log; " +
				"put \"NAME USER PASSWORD\" in every member's --failover-credentials-file and use --credential NAME")}
		}
		form := url.Values{"addr": {fs.Arg(0)}, "priority": {strconv.Itoa(*prio)}, "never_promote": {strconv.FormatBool(*never)}, "user": {*user},
			"credential": {*cred}}
		var out api.Candidate
		if err := c.foSend(ctx, http.MethodPost, "/failover/candidates", form, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "candidate %s stored (priority %d, never-promote %v)\n", out.Addr, out.Priority, out.NeverPromote)
		return nil
	case "remove":
		if fs.NArg() != 1 {
			return usageError{fmt.Errorf("candidates remove needs host:port")}
		}
		if err := c.foSend(ctx, http.MethodDelete, "/failover/candidates?"+url.Values{"addr": {fs.Arg(0)}}.Encode(), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "candidate %s removed\n", fs.Arg(0))
		return nil
	}
	return usageError{fmt.Errorf("candidates: unknown subcommand %q (list, add, remove)", sub)}
}

// cmdStatusWithFailover is status plus the failover's part (not with
// --json, whose shape stays api.Status).
func cmdStatusWithFailover(c *client, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("status", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object (GET /status)")
	wf := addWatchFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	return wf.run(stdout, stderr, "binlogctl status", func(ctx context.Context, w io.Writer) error {
		var st api.Status
		if err := c.get(ctx, "/status", &st); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(w, st)
		}
		printStatus(w, st)
		var fst api.FailoverStatus
		if err := c.get(ctx, "/failover/status", &fst); err != nil {
			fmt.Fprintf(w, "\nFailover:       unknown (%v)\n", err)
			return nil
		}
		fmt.Fprintln(w)
		printFailoverStatus(w, fst, false)
		return nil
	})
}

// cmdFailoverStatus is binlogctl failover status: the failover's part of
// status (with --json, /failover/status as is).
func cmdFailoverStatus(c *client, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("failover status", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print /failover/status as JSON")
	wf := addWatchFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	return wf.run(stdout, stderr, "binlogctl failover status", func(ctx context.Context, w io.Writer) error {
		var st api.FailoverStatus
		if err := c.get(ctx, "/failover/status", &st); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(w, st)
		}
		fmt.Fprintf(w, "Source:         %s (epoch %d)\n", dash(st.Source), st.Epoch)
		printFailoverStatus(w, st, true)
		return nil
	})
}

// printFailoverStatus prints the lease, the verdict, what the operator
// must do (if anything), the pending fences (one line, or each with
// detail), the operation and the last failover.
func printFailoverStatus(stdout io.Writer, st api.FailoverStatus, detail bool) {
	lease := "not held"
	if st.LeaseHeld {
		lease = "held"
	}
	if !st.LastContact.IsZero() {
		lease += fmt.Sprintf(" (%s; source last heard %s ago", st.Lease, time.Since(st.LastContact).Round(time.Millisecond))
		if !st.LeaseExpiry.IsZero() {
			lease += fmt.Sprintf(", runs out in %s", time.Until(st.LeaseExpiry).Round(time.Millisecond))
		}
		lease += ")"
	}
	fmt.Fprintf(stdout, "Source lease:   %s\n", lease)
	if st.ProbeError != "" {
		fmt.Fprintf(stdout, "Probe error:    %s\n", st.ProbeError)
	}
	auto := "on"
	if !st.Auto {
		auto = "off"
	}
	fmt.Fprintf(stdout, "Failover:       %s; verdict %s, decision %s", auto, st.Verdict, st.Decision)
	if st.Reason != "" && st.Reason != st.Verdict {
		fmt.Fprintf(stdout, " (%s)", st.Reason)
	}
	fmt.Fprintln(stdout)
	if st.Advice != "" {
		fmt.Fprintf(stdout, "ACTION NEEDED:  %s (retrying every %s)\n", st.Advice, dash(st.RetryInterval))
	}
	printPendingFences(stdout, st.PendingFences, detail)
	if op := st.Operation; op != nil && !op.Finished() {
		fmt.Fprintf(stdout, "In progress:    %s %s at step %s: %s\n", op.Kind, op.ID, op.Step, op.Message)
	}
	if cu := st.CatchUp; cu != nil {
		fmt.Fprintf(stdout, "Catch-up:       %s\n", catchUpLine(*cu, time.Now()))
	}
	if op := st.Last; op != nil {
		fmt.Fprintf(stdout, "Last failover:  %s %s -> %s at %s (epoch %d)\n", op.Kind, op.OldSource.Addr, dash(op.Target), op.Updated.UTC().Format(time.RFC3339), op.NewEpoch)
	} else {
		fmt.Fprintln(stdout, "Last failover:  none")
	}
	fmt.Fprintln(stdout, "Audit trail:    binlogctl history")
}

// printPendingFences prints the old sources whose fence is retried: one
// line, or (detail) one per server.
func printPendingFences(stdout io.Writer, pfs []api.PendingFence, detail bool) {
	if len(pfs) == 0 {
		return
	}
	if !detail {
		addrs := make([]string, len(pfs))
		for i, p := range pfs {
			addrs[i] = p.Addr
		}
		fmt.Fprintf(stdout, "Pending fences: %d old source(s) not yet read-only, retried until they answer: %s (binlogctl failover status)\n",
			len(pfs), strings.Join(addrs, ", "))
		return
	}
	fmt.Fprintf(stdout, "Pending fences: %d old source(s) not yet read-only, retried until they answer (binlogctl failover forget-fence HOST:PORT for one gone for good):\n", len(pfs))
	for _, p := range pfs {
		fmt.Fprintf(stdout, "  %s  since %s (%s ago), %d attempts, last error: %s\n", p.Addr, p.Since.UTC().Format(time.RFC3339),
			time.Since(p.Since).Round(time.Second), p.Attempts, dash(p.LastError))
	}
}

// catchUpLine is a failover target's catch-up progress in one line.
func catchUpLine(cu api.CatchUp, now time.Time) string {
	done := cu.Total - min(cu.Missing, cu.Total)
	pct := 100.0
	if cu.Total > 0 {
		pct = 100 * float64(done) / float64(cu.Total)
	}
	eta := "unknown yet"
	if cu.ETASeconds >= 0 {
		eta = (time.Duration(cu.ETASeconds * float64(time.Second))).Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("%s applied %d of the %d log transactions it lacked (%.1f%%), %d to go, %.0f txn/s, ETA %s (waiting %s)",
		cu.Target, done, cu.Total, pct, cu.Missing, cu.Rate, eta, now.Sub(cu.Since).Round(time.Second))
}
