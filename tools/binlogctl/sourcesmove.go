package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// movePoll is how often sources move --wait reads GET /sources (tests
// shorten it).
var movePoll = time.Second

// cmdSourcesMove is binlogctl sources move: POST /sources/NAME/move. The
// daemon answers at once and moves the logger in the background (To
// joins as a learner, catches up, is promoted, From is removed); --wait
// follows SourceInfo.Move until it is gone.
func cmdSourcesMove(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sources move", stderr)
	from := fs.String("from", "", "the host id whose logger of the source moves away (required)")
	to := fs.String("to", "", "the host id it moves to (required; not running the source yet)")
	dump := fs.String("dump-addr", "", "where host --to serves the source's replicas, HOST:PORT (empty HOST: every interface; default: none)")
	wait := fs.Bool("wait", false, "follow the move's steps until it is done (exit 0) or --timeout-move passes (exit 1)")
	timeout := fs.Duration("timeout-move", 10*time.Minute, "how long --wait waits for the move")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageFor("sources move", "")
	}
	name := fs.Arg(0)
	form, f, t, err := moveForm(name, *from, *to, *dump)
	if err != nil {
		return usageFor("sources move", err.Error())
	}
	if fs.Changed("timeout-move") && !*wait {
		return usageFor("sources move", "--timeout-move bounds --wait: give --wait too")
	}
	if *timeout <= 0 {
		return usageFor("sources move", fmt.Sprintf("--timeout-move %v: want a positive duration", *timeout))
	}
	var out api.SourceChange
	if err := c.post(context.Background(), movePath(name), form, &out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, out.Message)
	if !*wait {
		return nil
	}
	fmt.Fprintf(stdout, "waiting up to %v for the move (Ctrl-C stops the wait, not the move)\n", *timeout)
	return waitMove(c, stdout, name, f, t, *timeout)
}

// movePath is the route of a move, the name escaped as one path segment
// (NB: a name validSourceName accepts needs no escape; the route stays
// right should the rule widen).
func movePath(name string) string {
	return "/sources/" + url.PathEscape(name) + "/move"
}

// moveForm checks the arguments of sources move and returns its form
// (api/sources.go names the fields) and the two host ids. Its errors name
// the flag at fault.
func moveForm(name, from, to, dump string) (url.Values, uint64, uint64, error) {
	if err := validSourceName(name); err != nil {
		return nil, 0, 0, fmt.Errorf("NAME %v", err)
	}
	id := func(flag, s string) (uint64, error) {
		if s == "" {
			return 0, fmt.Errorf("%s HOST_ID is required", flag)
		}
		h, err := strconv.ParseUint(s, 10, 64)
		if err != nil || h == 0 {
			return 0, fmt.Errorf("%s %q: a host id is a positive integer", flag, s)
		}
		return h, nil
	}
	f, err := id("--from", from)
	if err != nil {
		return nil, 0, 0, err
	}
	t, err := id("--to", to)
	if err != nil {
		return nil, 0, 0, err
	}
	if f == t {
		return nil, 0, 0, fmt.Errorf("--from and --to are both host %d: a move goes to another host", f)
	}
	form := url.Values{"from": {strconv.FormatUint(f, 10)}, "to": {strconv.FormatUint(t, 10)}}
	if dump != "" {
		if err := checkAddr(dump, true); err != nil {
			return nil, 0, 0, fmt.Errorf("--dump-addr: %v", err)
		}
		form.Set("dump_addr", dump)
	}
	return form, f, t, nil
}

// moveStepText says what each step of api.SourceMove means.
func moveStepText(m api.SourceMove) string {
	switch m.Step {
	case "begun":
		return fmt.Sprintf("moving the logger of host %d to host %d", m.From, m.To)
	case "learner":
		return fmt.Sprintf("host %d added as a learner, catching up", m.To)
	case "promoted":
		return fmt.Sprintf("host %d promoted to a logger, removing host %d", m.To, m.From)
	case "removed":
		return fmt.Sprintf("host %d removed", m.From)
	}
	return fmt.Sprintf("host %d -> host %d", m.From, m.To)
}

// waitMove polls GET /sources every movePoll until the source shows no
// move and runs on host to and no longer on host from (done: nil), or
// timeout passes (an error with the last step and error seen). It prints
// a line when the step or the move's error changes. A failed read is
// printed and retried: a host may restart during a move.
func waitMove(c *client, w io.Writer, name string, from, to uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last api.SourceMove
	var lastErr string // the last read's error, or the move's
	printed := ""
	say := func(line string) {
		if line != printed {
			fmt.Fprintln(w, line)
			printed = line
		}
	}
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		var ss []api.SourceInfo
		err := c.get(ctx, "/sources", &ss)
		cancel()
		switch i := slices.IndexFunc(ss, func(s api.SourceInfo) bool { return s.Name == name }); {
		case err != nil:
			if time.Now().Before(deadline) {
				lastErr = err.Error()
				say("reading GET /sources: " + lastErr + " (retrying)")
			}
		case i < 0:
			return fmt.Errorf("source %s is gone from GET /sources (removed?): its move cannot finish", name)
		case ss[i].Move != nil:
			m := *ss[i].Move
			if m.Step != last.Step {
				fmt.Fprintf(w, "step %s: %s\n", m.Step, moveStepText(m))
			}
			if m.Error != "" {
				say(fmt.Sprintf("step %s failed: %s (retrying)", m.Step, m.Error))
			}
			last, lastErr = m, m.Error
			if m.Error == "" {
				printed = ""
			}
		case slices.Contains(ss[i].Loggers, to) && !slices.Contains(ss[i].Loggers, from) && !slices.Contains(ss[i].Learners, from):
			fmt.Fprintf(w, "done: source %s runs on hosts %s\n", name, hostsText(ss[i].Loggers, ss[i].Learners))
			return nil
		default:
			// NB: no move shown, but the hosts are not the move's yet: the
			// host asked has not seen the move begin, or it was undone.
			say(fmt.Sprintf("no move shown yet (hosts %s)", hostsText(ss[i].Loggers, ss[i].Learners)))
		}
		left := time.Until(deadline)
		if left <= 0 {
			step := last.Step
			if step == "" {
				step = "none seen"
			}
			msg := fmt.Sprintf("the move of source %s from host %d to host %d is not done after %v: last step %s", name, from, to, timeout, step)
			if lastErr != "" {
				msg += ", last error: " + lastErr
			}
			return fmt.Errorf("%s (it goes on in the background: binlogctl sources shows it)", msg)
		}
		time.Sleep(min(movePoll, left))
	}
}

// cmdSourcesHistory is binlogctl sources history: GET /sources/history,
// the fleet-wide admin calls (sources add, remove, move), oldest first.
func cmdSourcesHistory(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sources history", stderr)
	asJSON := fs.Bool("json", false, "print GET /sources/history as is (a JSON list)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 0 {
		return usageFor("sources history", fmt.Sprintf("no argument expected, got %q", fs.Args()))
	}
	var rs []api.AuditRecord
	if err := c.get(context.Background(), "/sources/history", &rs); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rs)
	}
	printAudit(stdout, rs)
	return nil
}

// printAudit is the sources history table, newest last; MESSAGE last as
// it is the longest.
func printAudit(w io.Writer, rs []api.AuditRecord) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "no fleet-wide admin call recorded")
		return
	}
	rs = slices.Clone(rs)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Time.Before(rs[j].Time) })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tHOST\tBY\tROLE\tSTATUS\tCALL\tMESSAGE")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), r.Host, dash(r.By), dash(r.Role), r.Status,
			dash(r.Call), dash(r.Message))
	}
	tw.Flush()
}
