package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// cmdSources is binlogctl sources [add|remove|move|history]: the fleet's
// sources (GET /sources), the catalog's changes (POST /sources, DELETE
// /sources/NAME, POST /sources/NAME/move; sourcesmove.go) and their audit
// trail (GET /sources/history). It is fleet-wide: --source-name does not
// apply.
func cmdSources(c *client, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "add":
			return cmdSourcesAdd(c, args[1:], stdout, stderr)
		case "remove":
			return cmdSourcesRemove(c, args[1:], stdout, stderr)
		case "move":
			return cmdSourcesMove(c, args[1:], stdout, stderr)
		case "history":
			return cmdSourcesHistory(c, args[1:], stdout, stderr)
		}
	}
	fs := newFlags("sources", stderr)
	asJSON := fs.Bool("json", false, "print GET /sources as is (a JSON list)")
	wf := addWatchFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 0 {
		return usageFor("sources", fmt.Sprintf("unknown subcommand %q (add, remove, move, history; none: the list)", fs.Arg(0)))
	}
	return wf.run(stdout, stderr, "binlogctl sources", func(ctx context.Context, w io.Writer) error {
		var ss []api.SourceInfo
		if err := c.get(ctx, "/sources", &ss); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(w, ss)
		}
		printSources(w, ss)
		return nil
	})
}

// printSources is the sources table, sorted by name; ERROR last, as it
// is the longest and most often empty. A MOVE column ("3->5 learner")
// shows only while some source has a move; a move's error goes in ERROR.
func printSources(w io.Writer, ss []api.SourceInfo) {
	ss = slices.Clone(ss)
	sort.Slice(ss, func(i, j int) bool { return ss[i].Name < ss[j].Name })
	moves := slices.ContainsFunc(ss, func(s api.SourceInfo) bool { return s.Move != nil })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "NAME\tSOURCE\tSHARD\tSTATE\tEPOCH\tLEADER\tLAG\tINGEST\tHOSTS\t"
	if moves {
		head += "MOVE\t"
	}
	fmt.Fprintln(tw, head+"ERROR")
	for _, s := range ss {
		leader := "-"
		if s.Leader != 0 {
			leader = fmt.Sprint(s.Leader)
		}
		// NB: the lag is the leader's ingest's: without an ingest state the
		// host asked could not read it, and 0 would say "caught up".
		lag := "-"
		if s.Ingest != "" {
			lag = fmt.Sprintf("%.1fs / %s", s.LagSeconds, sizeText(s.LagBytes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t", s.Name, dash(s.SourceAddr), s.ShardID, dash(s.State), s.Epoch,
			leader, lag, dash(s.Ingest), hostsText(s.Loggers, s.Learners))
		errText := s.Error
		if moves {
			move := "-"
			if m := s.Move; m != nil {
				move = fmt.Sprintf("%d->%d %s", m.From, m.To, dash(m.Step))
				if m.Error != "" {
					if errText != "" {
						errText += "; "
					}
					errText += "move: " + m.Error
				}
			}
			fmt.Fprintf(tw, "%s\t", move)
		}
		fmt.Fprintf(tw, "%s\n", dash(errText))
	}
	tw.Flush()
	if len(ss) == 0 {
		fmt.Fprintln(w, "no source yet: binlogctl sources add NAME --source HOST:PORT")
	}
}

// hostsText is a source's hosts: its loggers, then its learners after a
// '+' ("1,2,3 +4,5").
func hostsText(loggers, learners []uint64) string {
	ids := func(hs []uint64) string {
		hs = slices.Clone(hs)
		slices.Sort(hs)
		s := make([]string, len(hs))
		for i, h := range hs {
			s[i] = strconv.FormatUint(h, 10)
		}
		return strings.Join(s, ",")
	}
	out := dash(ids(loggers))
	if len(learners) > 0 {
		out += " +" + ids(learners)
	}
	return out
}

// cmdSourcesAdd is binlogctl sources add: POST /sources. It checks here
// what it can (the name, addresses, host lists) so that a typo is named
// by its flag before the catalog sees it; the catalog checks the rest
// (hosts that exist, ports another source uses, the failover flags).
func cmdSourcesAdd(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sources add", stderr)
	source := fs.String("source", "", "the MySQL/MariaDB source to pull from, HOST:PORT (required)")
	hosts := fs.String("hosts", "", "the host ids that run its log as loggers, 3 or 5 of them, e.g. 1,2,3 (default: the least loaded --loggers hosts)")
	loggers := fs.Int("loggers", 0, "how many loggers when --hosts is not given: 3 or 5 (default: the fleet's choice)")
	learners := fs.String("learners", "", "host ids that run it as learners (non-voting copies), e.g. 4,5")
	dumps := fs.StringSlice("dump-addr", nil, "where a host serves its replicas, HOST_ID=HOST:PORT (repeatable or comma-separated; empty HOST: every interface)")
	failover := fs.StringArray("failover", nil, "one of binlogsvr's --failover-* flags for this source, NAME=VALUE: lease=5s, failover-candidate=db2:3306 (repeatable; default: the host's)")
	retain := fs.StringArray("retain", nil, "one of binlogsvr's --retain-* flags for this source on every host that runs it, NAME=VALUE: files=20, bytes=10737418240, age=72h (repeatable; default: the host's)")
	asJSON := fs.Bool("json", false, "print the answer (the source, the message, the catalog version) as JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageFor("sources add", "")
	}
	form, err := sourceForm(fs.Arg(0), *source, *hosts, *loggers, fs.Changed("loggers"), *learners, *dumps, *failover)
	if err != nil {
		return usageFor("sources add", err.Error())
	}
	var rl []string
	for _, r := range *retain {
		name, value, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(r, "--"), "retain-"), "=")
		if !ok || value == "" || (name != "files" && name != "bytes" && name != "age") {
			return usageFor("sources add", fmt.Sprintf("--retain %q: want files=N, bytes=N or age=DURATION", r))
		}
		rl = append(rl, "--retain-"+name+"="+value)
	}
	if len(rl) > 0 {
		form.Set("retention", strings.Join(rl, "\n"))
	}
	var out api.SourceChange
	if err := c.post(context.Background(), "/sources", form, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	fmt.Fprintln(stdout, out.Message)
	printSources(stdout, []api.SourceInfo{out.Source})
	return nil
}

// sourceForm checks the arguments of sources add and returns its form
// (api/sources.go names the fields). Its errors name the flag at fault.
func sourceForm(name, source, hosts string, loggers int, loggersSet bool, learners string, dumps, failover []string) (url.Values, error) {
	if err := validSourceName(name); err != nil {
		return nil, fmt.Errorf("NAME %v", err)
	}
	if source == "" {
		return nil, fmt.Errorf("--source HOST:PORT is required: the MySQL/MariaDB server the source's log pulls from")
	}
	if err := checkAddr(source, false); err != nil {
		return nil, fmt.Errorf("--source: %v", err)
	}
	form := url.Values{"name": {name}, "source": {source}}
	lg, err := hostIDs("--hosts", hosts)
	if err != nil {
		return nil, err
	}
	ln, err := hostIDs("--learners", learners)
	if err != nil {
		return nil, err
	}
	switch {
	case hosts != "" && loggersSet:
		return nil, fmt.Errorf("--hosts and --loggers: give one (--hosts names the loggers, --loggers lets the fleet pick that many)")
	case hosts != "" && len(lg) != 3 && len(lg) != 5:
		return nil, fmt.Errorf("--hosts: 3 or 5 loggers, not %d", len(lg))
	case loggersSet && loggers != 3 && loggers != 5:
		return nil, fmt.Errorf("--loggers: 3 or 5, not %d", loggers)
	}
	for _, h := range ln {
		if slices.Contains(lg, h) {
			return nil, fmt.Errorf("--learners: host %d is in --hosts too (a host runs a source as a logger or a learner)", h)
		}
	}
	if hosts != "" {
		form.Set("hosts", joinIDs(lg))
	}
	if loggersSet {
		form.Set("loggers", strconv.Itoa(loggers))
	}
	if len(ln) > 0 {
		form.Set("learners", joinIDs(ln))
	}
	var das []string
	seen := map[uint64]bool{}
	for _, d := range dumps {
		id, addr, ok := strings.Cut(d, "=")
		h, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil || h == 0 {
			return nil, fmt.Errorf("--dump-addr %q: want HOST_ID=HOST:PORT, HOST_ID a positive integer", d)
		}
		if seen[h] {
			return nil, fmt.Errorf("--dump-addr: host %d is given twice", h)
		}
		seen[h] = true
		if err := checkAddr(addr, true); err != nil {
			return nil, fmt.Errorf("--dump-addr %q: %v", d, err)
		}
		if hosts != "" && !slices.Contains(lg, h) && !slices.Contains(ln, h) {
			return nil, fmt.Errorf("--dump-addr %q: host %d is in neither --hosts nor --learners", d, h)
		}
		das = append(das, strconv.FormatUint(h, 10)+"="+addr)
	}
	if len(das) > 0 {
		form.Set("dump_addr", strings.Join(das, ","))
	}
	var lines []string
	for _, f := range failover {
		l, err := failoverLine(f)
		if err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
	if len(lines) > 0 {
		form.Set("failover", strings.Join(lines, "\n"))
	}
	return form, nil
}

// failoverLine turns --failover NAME=VALUE into the form's line
// "--failover-NAME=VALUE". NAME may be written as binlogsvr spells it
// (failover-lease, --failover-lease) or short (lease).
//
// NB: binlogctl cannot register failover.Config's flags itself: the
// failover package links dragonboat, which binlogctl must not (tools/layers),
// so the names and values pass through and the daemon checks them.
func failoverLine(f string) (string, error) {
	name, value, ok := strings.Cut(f, "=")
	name = strings.TrimPrefix(strings.TrimPrefix(name, "--"), "failover-")
	if !ok || name == "" || strings.ContainsAny(name, " \t\n") || strings.Contains(value, "\n") {
		return "", fmt.Errorf("--failover %q: want NAME=VALUE, one of binlogsvr's --failover-NAME flags (lease=5s, candidate=db2:3306)", f)
	}
	return "--failover-" + name + "=" + value, nil
}

// hostIDs parses a comma-separated list of host ids: positive integers,
// each once.
func hostIDs(flag, s string) ([]uint64, error) {
	if s == "" {
		return nil, nil
	}
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		h, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil || h == 0 {
			return nil, fmt.Errorf("%s %q: host id %q is not a positive integer", flag, s, f)
		}
		if slices.Contains(out, h) {
			return nil, fmt.Errorf("%s %q: host %d is listed twice", flag, s, h)
		}
		out = append(out, h)
	}
	return out, nil
}

func joinIDs(hs []uint64) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = strconv.FormatUint(h, 10)
	}
	return strings.Join(s, ",")
}

// checkAddr checks host:port with a port in 1..65535; the host may be
// empty (every interface) only where wildcard allows it.
func checkAddr(addr string, wildcard bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want HOST:PORT: %v", err)
	}
	if host == "" && !wildcard {
		return fmt.Errorf("%q has no host", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: the port must be 1 to 65535", addr)
	}
	return nil
}

// cmdSourcesRemove is binlogctl sources remove: DELETE /sources/NAME.
// The catalog refuses (409) while replicas are registered or files are
// held, unless --force; binlogctl prints its reason and exits 1.
func cmdSourcesRemove(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sources remove", stderr)
	force := fs.Bool("force", false, "remove it even while replicas are registered or files are held (they lose the source's binlog)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageFor("sources remove", "")
	}
	name := fs.Arg(0)
	if err := validSourceName(name); err != nil {
		return usageFor("sources remove", "NAME "+err.Error())
	}
	path := "/sources/" + url.PathEscape(name)
	if *force {
		path += "?force=1"
	}
	var out api.SourceChange
	err := c.send(context.Background(), http.MethodDelete, path, nil, &out)
	if err != nil {
		var se statusError
		if !*force && errors.As(err, &se) && se.code == http.StatusConflict {
			return fmt.Errorf("%w (binlogctl sources remove %s --force removes it anyway, once its replicas have another source)", err, name)
		}
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	fmt.Fprintln(stdout, out.Message)
	return nil
}
