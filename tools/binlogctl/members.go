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

// membersCommands returns the membership commands: members,
// add-learner, demote, remove, transfer-leader, weight, purge, rotate. "promote"
// is registered in failover.go: with --to it is a switchover, otherwise it
// calls cmdPromoteMember.
func membersCommands() map[string]command {
	return map[string]command{
		"members":         cmdMembers,
		"add-learner":     cmdAddLearner,
		"demote":          cmdDemote,
		"remove":          cmdRemove,
		"transfer-leader": cmdTransferLeader,
		"weight":          cmdWeight,
		"purge":           cmdPurge,
		"rotate":          cmdRotate,
	}
}

// changeTimeout bounds a membership change: it waits for the group.
const changeTimeout = 90 * time.Second

// send calls a mutating endpoint (see client.do).
func (c *client) send(ctx context.Context, method, path string, form url.Values, v any) error {
	return c.do(ctx, method, path, form, v, max(c.http.Timeout, changeTimeout))
}

func (c *client) post(ctx context.Context, path string, form url.Values, v any) error {
	return c.send(ctx, http.MethodPost, path, form, v)
}

func (c *client) del(ctx context.Context, path string, v any) error {
	return c.send(ctx, http.MethodDelete, path, nil, v)
}

func newFlags(name string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// oneID parses the single member-id argument of the command whose usage
// line starts with cmd.
func oneID(fs *pflag.FlagSet, cmd string) (uint64, error) {
	if fs.NArg() != 1 {
		return 0, usageFor(cmd, "")
	}
	n, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil || n == 0 {
		return 0, usageFor(cmd, fmt.Sprintf("member id %q is not a positive integer", fs.Arg(0)))
	}
	return n, nil
}

func printOutcome(w io.Writer, asJSON bool, out api.Outcome) error {
	if asJSON {
		return printJSON(w, out)
	}
	fmt.Fprintln(w, out.Message)
	return nil
}

func cmdMembers(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("members", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	wf := addWatchFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	return wf.run(stdout, stderr, "binlogctl members", func(ctx context.Context, w io.Writer) error {
		var st api.MembersStatus
		if err := c.get(ctx, "/members?refresh=1", &st); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(w, st)
		}
		printMembers(w, st, time.Now())
		return nil
	})
}

func printMembers(w io.Writer, st api.MembersStatus, now time.Time) {
	leader := "none (no quorum?)"
	if st.Leader != 0 {
		leader = fmt.Sprint(st.Leader)
	}
	fmt.Fprintf(w, "Leader: %s   (asked member %d)\n\n", leader, st.AskedMember)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tLEADER\tWEIGHT\tRAFT ADDR\tAPPLIED\tLAG ENTRIES\tLAG BYTES\tLAST CONTACT\tSERVING\tRETENTION\tFILES\tSTATE")
	for _, m := range st.Members {
		l := ""
		if m.Leader {
			l = "*"
		}
		contact := "never"
		if !m.LastContact.IsZero() {
			contact = now.Sub(m.LastContact).Round(100*time.Millisecond).String() + " ago"
		}
		serving := "no"
		if m.Serving {
			serving = "yes " + m.DumpAddr
		} else if m.DumpAddr != "" {
			serving = "not yet (catching up)"
		}
		files := "-"
		if m.File > 0 {
			files = fmt.Sprintf("%s..%s", api.FileName(max(m.FirstFile, 1)), api.FileName(m.File))
		}
		state := "caught up"
		switch {
		case m.Error != "" && !m.Reachable:
			state = "unreachable: " + m.Error
		case !m.Reachable:
			state = "unreachable"
		case m.Progress != nil:
			state = "catching up, " + m.Progress.String()
		case !st.Complete:
			state = "unknown (leader not answering)"
		case !m.CaughtUp:
			state = "behind"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Role, l, m.Weight, m.RaftAddr, m.Applied,
			m.LagEntries, api.Bytes(m.LagBytes), contact, serving, retention(m), files, state)
	}
	tw.Flush()
	if len(st.Removed) > 0 {
		fmt.Fprintf(w, "\nRemoved ids (never reused): %v\n", st.Removed)
	}
	printHolds(w, st.View)
}

// printHolds lists the replicas whose files binlogctl purge keeps.
func printHolds(w io.Writer, v api.View) {
	ttl := time.Duration(v.HoldTTLSeconds * float64(time.Second))
	if len(v.ReplicaHolds) == 0 {
		fmt.Fprintf(w, "\nReplica holds: none (a replica's files are kept while it is connected and %v after)\n", ttl)
		return
	}
	fmt.Fprintf(w, "\nReplica holds (binlogctl purge keeps these files; a disconnected replica's for --replica-hold-ttl %v):\n", ttl)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER ID\tUUID\tMEMBER\tREMOTE\tHOLDS FROM\tAGE\tSTATE")
	for _, h := range v.ReplicaHolds {
		age, state := "-", "connected"
		if !h.Connected {
			d := time.Duration(h.AgeSeconds * float64(time.Second)).Round(time.Second)
			age = d.String()
			state = fmt.Sprintf("disconnected %v ago, expires in %v", d, max(time.Until(h.Expires), 0).Round(time.Second))
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s:%d\t%s\t%s\n", h.ServerID, dash(h.UUID), h.Member, dash(h.Remote), api.FileName(h.File), h.Pos, age, state)
	}
	tw.Flush()
}

func retention(m api.Member) string {
	r := m.Retention
	if !r.Limited() {
		return m.Profile + ", keeps all"
	}
	var parts []string
	if r.Files > 0 {
		parts = append(parts, fmt.Sprintf("%d files", r.Files))
	}
	if r.Bytes > 0 {
		parts = append(parts, api.Bytes(r.Bytes))
	}
	if r.AgeSeconds > 0 {
		parts = append(parts, (time.Duration(r.AgeSeconds) * time.Second).String())
	}
	return m.Profile + ", " + strings.Join(parts, "/")
}

func cmdAddLearner(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("add-learner", stderr)
	addr := fs.String("raft-addr", "", "the new learner's raft address, host:port (required)")
	admin := fs.String("admin-addr", "", "the new learner's admin API address, host:port: the leader then shows its catch-up progress in members from the start (it registers itself once caught up otherwise)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	id, err := oneID(fs, "add-learner")
	if err != nil {
		return err
	}
	if *addr == "" {
		return usageFor("add-learner", "add-learner needs --raft-addr HOST:PORT, where the new member's raft transport listens")
	}
	var out api.Outcome
	form := url.Values{"id": {fmt.Sprint(id)}, "addr": {*addr}}
	if *admin != "" {
		form.Set("admin_addr", *admin)
	}
	if err := c.post(context.Background(), "/members", form, &out); err != nil {
		return err
	}
	return printOutcome(stdout, *asJSON, out)
}

// cmdPromoteMember promotes a learner to a voting logger.
func cmdPromoteMember(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("promote", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	// NB: never set here (cmdPromote takes --to first); listed so that
	// promote --help shows the switchover too.
	fs.String("to", "", "instead of a learner: a planned switchover of the source to this replica, HOST:PORT (promote --to HOST:PORT --help: its flags)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	id, err := oneID(fs, "promote")
	if err != nil {
		return err
	}
	var out api.Outcome
	if err := c.post(context.Background(), fmt.Sprintf("/members/%d/promote", id), nil, &out); err != nil {
		return err
	}
	return printOutcome(stdout, *asJSON, out)
}

func cmdDemote(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demote", stderr)
	newID := fs.Uint64("new-id", 0, "the id it rejoins with as a learner (default: the next free id)")
	addr := fs.String("raft-addr", "", "the learner's raft address (default: the logger's)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	id, err := oneID(fs, "demote")
	if err != nil {
		return err
	}
	form := url.Values{}
	if *newID != 0 {
		form.Set("new_id", fmt.Sprint(*newID))
	}
	if *addr != "" {
		form.Set("addr", *addr)
	}
	var out api.Outcome
	if err := c.post(context.Background(), fmt.Sprintf("/members/%d/demote", id), form, &out); err != nil {
		return err
	}
	return printOutcome(stdout, *asJSON, out)
}

func cmdRemove(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("remove", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	id, err := oneID(fs, "remove")
	if err != nil {
		return err
	}
	var out api.Outcome
	if err := c.del(context.Background(), fmt.Sprintf("/members/%d", id), &out); err != nil {
		return err
	}
	return printOutcome(stdout, *asJSON, out)
}

func cmdTransferLeader(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("transfer-leader", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	id, err := oneID(fs, "transfer-leader")
	if err != nil {
		return err
	}
	var out api.Outcome
	if err := c.post(context.Background(), "/transfer-leader", url.Values{"to": {fmt.Sprint(id)}}, &out); err != nil {
		return err
	}
	return printOutcome(stdout, *asJSON, out)
}

func cmdWeight(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("weight", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 2 {
		return usageFor("weight", "N is 0..1000; the leader hands off to the heaviest caught-up logger")
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil || id == 0 {
		return usageFor("weight", fmt.Sprintf("member id %q is not a positive integer", fs.Arg(0)))
	}
	var out api.Outcome
	if err := c.post(context.Background(), fmt.Sprintf("/members/%d/weight", id), url.Values{"weight": {fs.Arg(1)}}, &out); err != nil {
		return err
	}
	return printOutcome(stdout, *asJSON, out)
}

func cmdPurge(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("purge", stderr)
	force := fs.Bool("force", false, "purge even files a learner or a registered replica still needs")
	dry := fs.Bool("dry-run", false, "only say what would be purged and what is held")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageFor("purge", "FILE is binlog.NNNNNN; the files before it go from every member")
	}
	form := url.Values{"to": {fs.Arg(0)}}
	if *force {
		form.Set("force", "1")
	}
	if *dry {
		form.Set("dry_run", "1")
	}
	var p api.PurgePlan
	err := c.post(context.Background(), "/purge", form, &p)
	if *asJSON && err == nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	if p.Message != "" {
		fmt.Fprintln(stdout, p.Message)
	}
	for _, h := range p.Holds {
		fmt.Fprintf(stdout, "  held: %s by %s: %s\n", h.Name, h.By, h.Why)
	}
	// NB: exit 3, not 0 or 1, when holds kept files it was asked to purge
	// (nothing or only part purged): a script can tell "held" from "failed".
	if len(p.Holds) > 0 && !p.Forced && !*dry {
		if err == nil {
			err = fmt.Errorf("purged below %s only, not below %s: %d hold(s) above", dash(p.FirstFile), fs.Arg(0), len(p.Holds))
		}
		return exitError{err, ExitPurgeHeld}
	}
	return err
}

// cmdRotate closes the log's open file on every member and opens the next
// one, as FLUSH BINARY LOGS does on a server.
func cmdRotate(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rotate", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 0 {
		return usageFor("rotate", "rotate takes no arguments")
	}
	var r api.Rotation
	if err := c.post(context.Background(), "/rotate", nil, &r); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintln(stdout, r.Message)
	return nil
}

// ExitPurgeHeld is binlogctl purge's exit code when holds kept some of the
// files it was asked to purge.
const ExitPurgeHeld = 3
