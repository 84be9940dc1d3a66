package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// cmdHosts is binlogctl hosts [add]: the fleet's hosts (GET /hosts) and
// adding one outside the catalog's voters (POST /hosts). Fleet-wide:
// --source-name does not apply.
func cmdHosts(c *client, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "add" {
		return cmdHostsAdd(c, args[1:], stdout, stderr)
	}
	fs := newFlags("hosts", stderr)
	asJSON := fs.Bool("json", false, "print GET /hosts as is (a JSON list)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 0 {
		return usageFor("hosts", fmt.Sprintf("unknown subcommand %q (add; none: the list)", fs.Arg(0)))
	}
	var hs []api.HostInfo
	if err := c.get(context.Background(), "/hosts", &hs); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, hs)
	}
	printHosts(stdout, hs)
	return nil
}

// printHosts is the hosts table, by id.
func printHosts(w io.Writer, hs []api.HostInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT\tADMIN\tCATALOG\tSHARDS")
	for _, h := range hs {
		cat := h.Catalog
		if cat == "" {
			cat = "not in it"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\n", h.ID, dash(h.RaftAddr), dash(h.AdminAddr), cat, h.Shards)
	}
	tw.Flush()
}

// cmdHostsAdd is binlogctl hosts add ID --raft-addr H:P --admin-addr H:P.
func cmdHostsAdd(c *client, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("hosts add", stderr)
	raft := fs.String("raft-addr", "", "the new host's --raft-addr, HOST:PORT (required)")
	admin := fs.String("admin-addr", "", "the new host's --admin-addr, HOST:PORT (required)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageFor("hosts add", "")
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil || id == 0 || id > 1023 {
		return usageFor("hosts add", fmt.Sprintf("ID %q: a host id in 1..1023 (the new host's --id)", fs.Arg(0)))
	}
	for flag, v := range map[string]string{"--raft-addr": *raft, "--admin-addr": *admin} {
		if h, _, err := net.SplitHostPort(v); err != nil || h == "" {
			return usageFor("hosts add", fmt.Sprintf("%s %q: want HOST:PORT", flag, v))
		}
	}
	var out map[string]string
	form := url.Values{"id": {strconv.FormatUint(id, 10)}, "raft_addr": {*raft}, "admin_addr": {*admin}}
	if err := c.post(context.Background(), "/hosts", form, &out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, out["message"])
	return nil
}
