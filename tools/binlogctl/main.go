// Command binlogctl operates a binlogsvr fleet through a member's admin API.
//
//	binlogctl --admin HOST:PORT --ca ca.crt --token-file FILE status [--json]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

const usage = `Usage: binlogctl [--admin HOST:PORT] [--ca FILE] [--token-file FILE] [--timeout D] [--source-name NAME] COMMAND [flags]

binlogctl speaks HTTPS to the admin API, verifies the member against --ca ($BINLOGCTL_CA) and sends the token
in --token-file ($BINLOGCTL_TOKEN; a role read token is enough for status, members, history and candidates
list; the rest needs operate), or a client certificate (--cert/--key). --insecure speaks plain HTTP to a
fleet started with --insecure.

On a fleet of several sources, --source-name NAME ($BINLOGCTL_SOURCE) picks the source every command but
sources and certs is about (it calls /sources/NAME/...); without it a command means the fleet's only source.

Commands:
  status [--json] [--watch]       the group: leader, epoch, source, ingest, semi-sync, files, members,
                                  lease and last failover
  members [--json] [--watch]      members: role, address, applied index, lag, serving, retention
  add-learner ID --raft-addr H:P  add a non-voting learner (then start it with --join --role learner)
  promote ID                      promote a caught-up learner to a voting logger
  promote --to HOST:PORT          planned switchover of the source to that replica (zero loss)
  demote ID                       turn a logger into a learner
  remove ID                       remove a member (refused if it would break the quorum)
  transfer-leader ID              hand the group's leadership to a logger
  weight ID N                     set a logger's weight (the heaviest caught-up logger leads)
  purge FILE [--force] [--dry-run]  purge binlog files group-wide (held files are refused unless --force)
  rotate                          close the open binlog file on every member and start the next
  failover [--force] [--to ADDR]  fail over now (after the fence and the candidate checks)
  failover status [--json] [--watch]
                                  the lease, the verdict, the operation and what to do (if anything)
  failover forget-fence HOST:PORT
                                  stop retrying the fence of an old source gone for good (pending_fences)
  history                         the failover audit trail
  candidates [list|add|remove]    the replicas that may be promoted
  rejoin-check HOST:PORT          an old source's transactions the log lacks (never acknowledged)
  rejoin HOST:PORT                attach an old source as a replica of the fleet when nothing is errant
  sources [--json] [--watch]      the fleet's sources: shard, state, epoch, leader host, lag, ingest, hosts
  sources add NAME --source HOST:PORT [--hosts IDS] [--loggers N] [--learners IDS] [--dump-addr ID=H:P] [--failover F=V] [--retain F=V]
                                  add a source: its log on --hosts (default: the least loaded hosts)
  sources remove NAME [--force]   remove a source (refused while replicas or holds need it, unless --force)
  sources move NAME --from H --to H [--dump-addr HOST:PORT] [--wait] [--timeout-move D]
                                  move a source's logger from host --from to host --to (a learner first);
                                  --wait follows its steps
  sources history [--json]        the audit trail of sources add, remove and move: who, when, what it got
  hosts [--json]                  the fleet's hosts: raft and admin addresses, catalog voter or learner, shards
  hosts add ID --raft-addr HOST:PORT --admin-addr HOST:PORT
                                  add a host outside the catalog's voters (then start it with the same
                                  --catalog-members)
  certs create-ca|create-member|create-client|create-token
                                  make the fleet's CA, member and client certificates and token lines
                                  (binlogctl certs --help)

Each command takes --help for its own flags.


Global flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("binlogctl", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	admin := fs.String("admin", envOr("BINLOGCTL_ADMIN", "127.0.0.1:7070"), "admin API address of any member (or $BINLOGCTL_ADMIN)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the admin API")
	tokenFile := fs.String("token-file", os.Getenv("BINLOGCTL_TOKEN_FILE"), "file holding the admin API token (its first non-comment line; or the token in $BINLOGCTL_TOKEN)")
	caFile := fs.String("ca", os.Getenv("BINLOGCTL_CA"), "the fleet's CA certificate, to verify the member (or $BINLOGCTL_CA; default: the system's CAs)")
	certFile := fs.String("cert", os.Getenv("BINLOGCTL_CERT"), "client certificate (binlogctl certs create-client) instead of a token (or $BINLOGCTL_CERT)")
	keyFile := fs.String("key", os.Getenv("BINLOGCTL_KEY"), "the client certificate's key (or $BINLOGCTL_KEY)")
	insecure := fs.Bool("insecure", os.Getenv("BINLOGCTL_INSECURE") != "", "plain HTTP without a token, to a fleet started with --insecure (or $BINLOGCTL_INSECURE=1)")
	sourceName := fs.String("source-name", os.Getenv("BINLOGCTL_SOURCE"), "the source a command is about, on a fleet of several (or $BINLOGCTL_SOURCE; binlogctl sources lists them)")
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	c, err := newClient(*admin, *timeout, *insecure, *tokenFile, *caFile, *certFile, *keyFile, cmd != "certs")
	if err != nil {
		fmt.Fprintln(stderr, "binlogctl:", err)
		return 2
	}
	f, ok := commands()[cmd]
	if !ok {
		fmt.Fprintf(stderr, "binlogctl: unknown command %q\n\n", cmd)
		fs.Usage()
		return 2
	}
	// NB: the one place a source is chosen: client.do puts the prefix on
	// every path, so no command builds /sources/NAME itself.
	if *sourceName != "" && !fleetWide[cmd] {
		if err := validSourceName(*sourceName); err != nil {
			fmt.Fprintln(stderr, "binlogctl: --source-name:", err)
			return 2
		}
		c.prefix = "/sources/" + url.PathEscape(*sourceName)
	}
	err = f(c, rest, stdout, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		fmt.Fprintln(stderr, "binlogctl:", err)
		return ee.code
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "binlogctl:", err)
			return 2
		}
		fmt.Fprintln(stderr, "binlogctl:", err)
		return 1
	}
	return 0
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// exitError ends binlogctl with its own exit code (purge: 3 when holds
// kept files it was asked to purge).
type exitError struct {
	error
	code int
}

func (e exitError) Unwrap() error { return e.error }

// statusError is an admin API answer other than 200 OK: code is its HTTP
// status, for a command that tells a refusal (409) from a failure.
type statusError struct {
	code int
	error
}

func (e statusError) Unwrap() error { return e.error }

// synopsis returns the usage line of a command as --help shows it: the
// first line of the command list that starts with prefix ("remove",
// "promote --to"). Usage errors quote it, so that the help and the errors
// cannot disagree (TestUsageMatchesCommands).
func synopsis(prefix string) string {
	for _, s := range synopses() {
		if s == prefix || strings.HasPrefix(s, prefix+" ") {
			return s
		}
	}
	return prefix
}

// usageFor is the usage error of a command called with missing or bad
// arguments; why (optional) says what was wrong.
func usageFor(prefix, why string) error {
	if why != "" {
		why = ": " + why
	}
	return usageError{fmt.Errorf("usage: binlogctl %s%s", synopsis(prefix), why)}
}

// synopses are the command lines of usage, in order: each line of the
// command list that starts with two spaces and a command name, up to the
// gap before its description.
func synopses() []string {
	var out []string
	_, list, _ := strings.Cut(usage, "\nCommands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	for _, l := range strings.Split(list, "\n") {
		if !strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "   ") {
			continue
		}
		s, _, _ := strings.Cut(strings.TrimSpace(l), "  ")
		out = append(out, s)
	}
	return out
}

// command runs one binlogctl command.
type command func(c *client, args []string, stdout, stderr io.Writer) error

// commands maps command names to their functions: certs in certs.go,
// sources in sources.go, membership commands in members.go, status and
// failover commands in failover.go.
func commands() map[string]command {
	m := map[string]command{"certs": cmdCerts, "sources": cmdSources, "hosts": cmdHosts}
	for k, v := range membersCommands() {
		m[k] = v
	}
	for k, v := range failoverCommands() {
		m[k] = v
	}
	return m
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// fleetWide are the commands about no one source: --source-name does not
// apply to them (sources lists and changes the sources; certs makes files).
var fleetWide = map[string]bool{"certs": true, "sources": true, "hosts": true}

// validSourceName checks a source name as the catalog does: a DNS label
// (it names URLs, metric labels and directories).
func validSourceName(name string) error {
	if api.CheckSourceName(name) != nil {
		return fmt.Errorf("%q: a source name is a DNS label: 1 to 63 of a-z, 0-9 and '-', starting with a letter, not ending with '-'", name)
	}
	return nil
}

type client struct {
	base     string
	admin    string
	token    string
	insecure bool
	http     *http.Client
	// prefix goes before every path: /sources/NAME with --source-name,
	// empty otherwise (the root paths mean the fleet's only source).
	prefix string
}

// newClient makes the admin API client from the global flags. need false
// (binlogctl certs) skips reading the credentials.
func newClient(admin string, timeout time.Duration, insecure bool, tokenFile, caFile, certFile, keyFile string, need bool) (*client, error) {
	c := &client{admin: admin, insecure: insecure, http: &http.Client{Timeout: timeout}}
	if insecure {
		c.base = "http://" + admin
		return c, nil
	}
	c.base = "https://" + admin
	if !need {
		return c, nil
	}
	c.token = strings.TrimSpace(os.Getenv("BINLOGCTL_TOKEN"))
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		c.token = ""
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			// NB: a line of the members' token file ("ROLE NAME TOKEN") works too.
			f := strings.Fields(line)
			c.token = f[len(f)-1]
			break
		}
		if c.token == "" {
			return nil, fmt.Errorf("--token-file %s holds no token", tokenFile)
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--ca %s holds no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	c.http.Transport = tr
	return c, nil
}

// explain turns a transport error into what to do about it.
func (c *client) explain(err error) error {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("the admin API at %s speaks plain HTTP (a member started with --insecure?): pass --insecure to binlogctl", c.admin)
	case errors.As(err, &ua) || strings.Contains(msg, "signed by unknown authority"):
		return fmt.Errorf("the member at %s has a certificate from a CA binlogctl does not trust: pass the fleet's CA with --ca FILE or $BINLOGCTL_CA (%v)", c.admin, err)
	case errors.As(err, &hn):
		return fmt.Errorf("the member's certificate is not for %s: use an --admin address its certificate names (%v)", c.admin, err)
	case errors.As(err, &ci):
		return fmt.Errorf("the member's certificate at %s is not valid: %v", c.admin, err)
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:"):
		return fmt.Errorf("TLS with the admin API at %s failed: %v (check --ca, --cert/--key)", c.admin, err)
	}
	return fmt.Errorf("cannot reach the admin API at %s: %v (is binlogsvr running, and is --admin right?)", c.admin, err)
}

// get fetches path and decodes its JSON into v.
func (c *client) get(ctx context.Context, path string, v any) error {
	return c.do(ctx, http.MethodGet, path, nil, v, c.http.Timeout)
}

// do is the one way binlogctl calls the admin API: a form (if any) in, the
// JSON answer decoded into v. An API error carries the member's own message
// (and v still gets the answer's fields: a refused purge says what is held).
// timeout 0 leaves the bound to ctx (a switchover waits for catch-up).
func (c *client) do(ctx context.Context, method, path string, form url.Values, v any, timeout time.Duration) error {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+c.prefix+path, body)
	if err != nil {
		return err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.http
	hc.Timeout = timeout
	resp, err := hc.Do(req)
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(b), "HTTP request to an HTTPS server"):
		return fmt.Errorf("the admin API at %s speaks TLS: drop --insecure (and pass the fleet's CA with --ca)", c.admin)
	case resp.StatusCode == http.StatusUnauthorized:
		hint := "pass a token with --token-file FILE or $BINLOGCTL_TOKEN (or a client certificate with --cert/--key)"
		if c.token != "" {
			hint = "the token binlogctl sent is not in the member's --admin-token-file (rotated?)"
		}
		return fmt.Errorf("%s: the admin API wants credentials: %s: %s", resp.Status, hint, apiError(b))
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: %s (use a token with role operate)", resp.Status, apiError(b))
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if v != nil {
				_ = json.Unmarshal(b, v)
			}
			if resp.StatusCode == http.StatusConflict && c.prefix == "" && strings.Contains(e.Error, "--source-name") {
				e.Error += " (binlogctl sources lists them)"
			}
			return statusError{resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, e.Error)}
		}
		return statusError{resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

func printStatus(w io.Writer, st api.Status) {
	leader := "none (no quorum?)"
	if st.Leader != 0 {
		leader = fmt.Sprint(st.Leader)
	}
	source := st.Source
	if source == "" {
		source = "none yet"
	} else if st.Flavor != "" {
		source += " (" + st.Flavor + ")"
	}
	if st.Removed != "" {
		fmt.Fprintf(w, "REMOVED:        %s\n", st.Removed)
	}
	if st.Insecure {
		fmt.Fprintf(w, "INSECURE:       member %d runs with --insecure: no TLS, no tokens; anyone who can reach its ports can change the fleet\n", st.ID)
	}
	fmt.Fprintf(w, "Leader:         %s\n", leader)
	fmt.Fprintf(w, "Epoch:          %d\n", st.Epoch)
	fmt.Fprintf(w, "Source:         %s\n", source)
	if st.SourceError != "" {
		fmt.Fprintf(w, "Source error:   %s\n", st.SourceError)
	}
	fmt.Fprintf(w, "GTID executed:  %s\n", dash(st.GTIDExecuted))
	fmt.Fprintf(w, "Transactions:   %d\n", st.Transactions)
	fmt.Fprintf(w, "Files:          %s .. %s, end position %d\n", dash(st.FirstFile), dash(st.LastFile), st.LastPosition)
	if in := st.Ingest; in != nil {
		fmt.Fprintf(w, "Ingest:         %s", in.State)
		if in.LastAckFile != "" {
			fmt.Fprintf(w, ", last ACK %s:%d (%s)", in.LastAckFile, in.LastAckPos, in.LastAckGTID)
		}
		fmt.Fprintf(w, ", lag %.1fs / %d bytes\n", in.LagSeconds, in.LagBytes)
		if in.LastError != "" {
			fmt.Fprintf(w, "Ingest error:   %s\n", in.LastError)
		}
		ss := in.SemiSync
		switch {
		case ss.Error != "" && !ss.Enabled:
			fmt.Fprintf(w, "Source semi-sync: NOT AVAILABLE (%s): commits are NOT protected\n", ss.Error)
		case !ss.Enabled && in.State == "streaming":
			fmt.Fprintf(w, "Source semi-sync: OFF: commits are NOT protected\n")
		case ss.Degraded:
			fmt.Fprintf(w, "Source semi-sync: FELL BACK TO ASYNC (status %v, no_tx %d): commits are NOT protected\n", ss.Status, ss.NoTx)
		case ss.Enabled:
			fmt.Fprintf(w, "Source semi-sync: on (clients %d, yes_tx %d, no_tx %d)\n", ss.Clients, ss.YesTx, ss.NoTx)
		}
		printHistory(w, in)
		if in.StatementEvents > 0 {
			fmt.Fprintf(w, "STATEMENT events: %d (last %s): a session writes with binlog_format=STATEMENT; set ROW for every session (see the leader's log)\n",
				in.StatementEvents, in.LastStatementGTID)
		}
	}
	fmt.Fprintf(w, "Asked member:   %d (applied index %d)\n\n", st.ID, st.Applied)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tRAFT ADDR\tADMIN ADDR\tLEADER\tAPPLIED\tLAST FILE\tPOSITION\tSTATE")
	for _, m := range st.Members {
		state := "ok"
		if m.Error != "" {
			state = m.Error
		}
		l := ""
		if m.Leader {
			l = "*"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", m.ID, m.Role, m.RaftAddr, dash(m.AdminAddr), l, m.Applied, dash(m.LastFile), m.LastPosition, state)
	}
	tw.Flush()
	if st.DumpAddr != "" {
		fmt.Fprintf(w, "\nDump clients of member %d (serving on %s): %d\n", st.ID, st.DumpAddr, len(st.DumpClients))
		if len(st.DumpClients) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONN\tREMOTE\tSERVER ID\tMODE\tPOSITION\tLAG\tSTATE\tACKED")
			for _, c := range st.DumpClients {
				state := "idle"
				if c.Dumping && c.CaughtUp {
					state = "caught up"
				} else if c.Dumping {
					state = "catching up"
				}
				acked := "-" // not semi-sync
				if c.SemiSync && c.AckFile == "" {
					acked = "semi-sync, none yet"
				} else if c.AckFile != "" {
					acked = fmt.Sprintf("%s:%d %s ago", c.AckFile, c.AckPos, time.Since(c.AckTime).Round(time.Millisecond))
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s:%d\t%.1fs\t%s\t%s\n", c.ID, c.Remote, c.ServerID, dash(c.Mode), dash(c.File), c.Pos, c.LagSeconds, state, acked)
			}
			tw.Flush()
		}
	}
}

// printHistory prints where the source's history ends and the backfill's
// progress (a read from behind the source's end).
func printHistory(w io.Writer, in *api.IngestStatus) {
	if in.SourceOldestFile != "" {
		purged := in.SourcePurged
		if purged == "" {
			purged = "nothing (it holds every transaction since it began)"
		}
		fmt.Fprintf(w, "Source history: oldest file %s; purged (the source can no longer send): %s\n", in.SourceOldestFile, purged)
	}
	b := in.Backfill
	if b == nil {
		return
	}
	pct := 100.0
	if b.TotalBytes > 0 {
		pct = 100 * float64(min(b.ReadBytes, b.TotalBytes)) / float64(b.TotalBytes)
	}
	if b.Active {
		eta := "unknown"
		if b.ETASeconds > 0 {
			eta = (time.Duration(b.ETASeconds * float64(time.Second))).Round(time.Second).String()
		}
		fmt.Fprintf(w, "Backfill:       reading the source's binlog: %s of %s (%.1f%%, %d files), %s/s, ETA %s, at %s\n",
			sizeText(b.ReadBytes), sizeText(b.TotalBytes), pct, b.Files, sizeText(uint64(b.RateBytesPerSecond)), eta, dash(b.SourceFile))
		return
	}
	if !b.Finished.IsZero() {
		fmt.Fprintf(w, "Backfill:       done %s ago: read up to the source's end (%s, from %s), %s/s, took %s\n",
			time.Since(b.Finished).Round(time.Second), sizeText(b.ReadBytes), dash(b.FromFile), sizeText(uint64(b.RateBytesPerSecond)),
			b.Finished.Sub(b.Started).Round(time.Millisecond))
		return
	}
	fmt.Fprintf(w, "Backfill:       stopped at %s of %s (%.1f%%): the session ended; the next one resumes\n", sizeText(b.ReadBytes), sizeText(b.TotalBytes), pct)
}

// sizeText is n bytes for people (KiB, MiB, GiB).
func sizeText(n uint64) string {
	const k = 1024
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%.2f GiB", float64(n)/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	case n >= k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	}
	return fmt.Sprintf("%d B", n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// apiError is the error message of an admin API answer.
func apiError(b []byte) string {
	var e struct{ Error string }
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(b))
}
