package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Flavor names a server implementation.
type Flavor string

const (
	MariaDB Flavor = "mariadb" // MariaDB 10.11 from Debian bookworm
	MySQL   Flavor = "mysql"   // Oracle MySQL 9.7 from Debian sid, run in a chroot
)

// installHint ends every "binaries missing" error; tests print it verbatim.
const installHint = "run: sudo bash tools/sandbox/install.sh"

// Account names and passwords baked into every template.
const (
	rootUser     = "root"
	rootPassword = "sandbox-root"
	replUser     = "repl"
	replPassword = "sandbox-repl"
)

// templateFormat is bumped whenever the template's contents (accounts, init options) change, so
// that templates cached by an older version of this package are not reused.
const templateFormat = 2

// ChrootDir is where install.sh puts the MySQL chroot: $BINLOGSVR_MYSQL_CHROOT, or
// /var/cache/binlogsvr/mysql-sid.
func ChrootDir() string {
	if d := os.Getenv("BINLOGSVR_MYSQL_CHROOT"); d != "" {
		return filepath.Clean(d)
	}
	return "/var/cache/binlogsvr/mysql-sid"
}

// flavorImpl is the one seam between the two server implementations. Paths it returns or takes
// are as the server sees them (inside the chroot for MySQL); layout translates them.
type flavorImpl interface {
	name() Flavor
	// root is the host directory the server's "/" maps to: "" for no chroot.
	root() string
	available() error
	// binary is the server's executable, as seen by the server.
	binary() string
	// initCmd returns the argv (program as seen by the server) that initialises l.dataDir.
	initCmd(l layout) []string
	// baseArgs are the arguments every start shares (template warm-up and sandbox alike).
	baseArgs(l layout) []string
	// serverArgs are the arguments of a sandbox start on top of baseArgs.
	serverArgs(l layout, o Options, port int) []string
	// templateArgs are the arguments of the one networkless start that creates the accounts.
	templateArgs(l layout) []string
	// accountSQL creates the accounts, given the existing root accounts' hosts. NB: it runs in
	// the template's start, which has no binary log (templateArgs, baseArgs): the accounts are in
	// no binlog, so a fleet that copies a sandbox source's whole history (binlogsvr
	// --source-start oldest) never replays them to a replica that has them already.
	// TestStart checks that a fresh server has no GTID history.
	accountSQL(rootHosts []string) []string
	// templateParent is the host directory that holds this flavor's cached templates.
	templateParent() (string, error)
	// defaultParent is the host directory new sandboxes go in when Options.Dir is empty.
	defaultParent() string
}

func lookupFlavor(f Flavor) (flavorImpl, error) {
	switch f {
	case MariaDB:
		return mariadb{}, nil
	case MySQL:
		return mysql{chroot: ChrootDir()}, nil
	case "":
		return nil, errors.New("sandbox: Options.Flavor is empty (want sandbox.MariaDB or sandbox.MySQL)")
	}
	return nil, fmt.Errorf("sandbox: unknown flavor %q", f)
}

// Available reports whether servers of flavor f can start on this machine. Its error says what to
// install.
func Available(f Flavor) error {
	impl, err := lookupFlavor(f)
	if err != nil {
		return err
	}
	return impl.available()
}

// cacheDir is where host-side templates live: $BINLOGSVR_CACHE_DIR, /var/cache/binlogsvr if
// writable, else the user's cache directory.
func cacheDir() (string, error) {
	if d := os.Getenv("BINLOGSVR_CACHE_DIR"); d != "" {
		return d, os.MkdirAll(d, 0o755)
	}
	const sys = "/var/cache/binlogsvr"
	if err := os.MkdirAll(sys, 0o755); err == nil && writable(sys) {
		return sys, nil
	}
	uc, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("sandbox: no cache directory: %w", err)
	}
	d := filepath.Join(uc, "binlogsvr")
	return d, os.MkdirAll(d, 0o755)
}

func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

func isRoot() bool { return os.Geteuid() == 0 }

// binaryKey names a template after the server binary it was made by.
func binaryKey(f Flavor, hostPath string) (string, error) {
	fi, err := os.Stat(hostPath)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s-%d-%d-v%d", f, fi.Size(), fi.ModTime().Unix(), templateFormat), nil
}

// commonArgs are shared by both flavors; the caller puts --no-defaults first.
func commonArgs(l layout) []string {
	a := []string{
		"--datadir=" + l.in(l.dataDir),
		"--socket=" + l.in(l.socket),
		"--pid-file=" + l.in(l.pidFile),
		"--log-error=" + l.in(l.errorLog),
		"--tmpdir=" + l.in(l.tmpDir),
		"--innodb-buffer-pool-size=64M",
		"--max-connections=200",
	}
	if isRoot() {
		a = append(a, "--user=root")
	}
	return a
}

func binlogArgs(l layout, o Options, port int) []string {
	return []string{
		"--port=" + strconv.Itoa(port),
		"--bind-address=" + o.BindAddress,
		"--skip-name-resolve",
		"--report-host=" + o.BindAddress,
		"--report-port=" + strconv.Itoa(port),
		"--server-id=" + strconv.FormatUint(uint64(o.ServerID), 10),
		"--log-bin=" + l.in(filepath.Join(l.binlogDir, "binlog")),
		"--relay-log=relay-bin",
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
	}
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// quote is a single-quoted SQL string literal for the account names and passwords used here.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ---------------------------------------------------------------------------------------------

type mariadb struct{}

func (mariadb) name() Flavor   { return MariaDB }
func (mariadb) root() string   { return "" }
func (mariadb) binary() string { return findHostBinary("mariadbd") }

func findHostBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

func (m mariadb) available() error {
	for _, b := range []string{"mariadbd", "mariadb-install-db"} {
		if findHostBinary(b) == "" {
			return fmt.Errorf("sandbox: MariaDB is not installed (%s not found); %s", b, installHint)
		}
	}
	return nil
}

func (mariadb) initCmd(l layout) []string {
	user := currentUser()
	if isRoot() {
		user = "root"
	}
	return []string{
		findHostBinary("mariadb-install-db"), "--no-defaults",
		"--datadir=" + l.dataDir,
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--user=" + user,
		"--innodb-log-file-size=64M",
	}
}

func (mariadb) baseArgs(l layout) []string {
	return append(commonArgs(l), "--innodb-log-file-size=64M")
}

func (mariadb) serverArgs(l layout, o Options, port int) []string {
	a := binlogArgs(l, o, port)
	a = append(a, "--log-slave-updates=ON")
	if o.SemiSyncSource {
		a = append(a,
			"--rpl-semi-sync-master-enabled=ON",
			"--rpl-semi-sync-master-wait-point=AFTER_SYNC",
			"--rpl-semi-sync-master-timeout="+ms(o.SemiSyncTimeout),
		)
	}
	if o.SemiSyncReplica {
		a = append(a, "--rpl-semi-sync-slave-enabled=ON")
	}
	return a
}

func (mariadb) templateArgs(layout) []string { return []string{"--skip-networking"} }

func (mariadb) accountSQL(rootHosts []string) []string {
	pw := func(p string) string { return "IDENTIFIED VIA mysql_native_password USING PASSWORD(" + quote(p) + ")" }
	var q []string
	for _, h := range rootHosts {
		q = append(q, "ALTER USER "+quote(rootUser)+"@"+quote(h)+" "+pw(rootPassword))
	}
	return append(q,
		"CREATE USER IF NOT EXISTS "+quote(rootUser)+"@'%' "+pw(rootPassword),
		"GRANT ALL PRIVILEGES ON *.* TO "+quote(rootUser)+"@'%' WITH GRANT OPTION",
		"CREATE USER "+quote(replUser)+"@'%' "+pw(replPassword),
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO "+quote(replUser)+"@'%'",
	)
}

func (mariadb) templateParent() (string, error) {
	c, err := cacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "templates"), nil
}

func (mariadb) defaultParent() string { return os.TempDir() }

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Geteuid())
}

// ---------------------------------------------------------------------------------------------

type mysql struct{ chroot string }

func (m mysql) name() Flavor   { return MySQL }
func (m mysql) root() string   { return m.chroot }
func (m mysql) binary() string { return "/usr/sbin/mysqld" }

func (m mysql) available() error {
	if _, err := os.Stat(filepath.Join(m.chroot, "usr/sbin/mysqld")); err != nil {
		return fmt.Errorf("sandbox: MySQL 9.7 is not installed (no chroot with usr/sbin/mysqld at %s); %s", m.chroot, installHint)
	}
	if !isRoot() {
		return fmt.Errorf("sandbox: MySQL runs in the chroot %s and needs root (chroot, mount proc); run the tests as root", m.chroot)
	}
	return nil
}

func (m mysql) initCmd(l layout) []string {
	return append([]string{m.binary(), "--no-defaults", "--initialize-insecure"},
		append(m.baseArgs(l), "--skip-log-bin")...)
}

func (m mysql) baseArgs(l layout) []string {
	return append(commonArgs(l),
		"--mysqlx=OFF",
		"--secure-file-priv=",
		"--performance-schema=OFF",
		"--innodb-redo-log-capacity=64M",
	)
}

func (m mysql) serverArgs(l layout, o Options, port int) []string {
	a := binlogArgs(l, o, port)
	a = append(a,
		"--gtid-mode=ON",
		"--enforce-gtid-consistency=ON",
		"--log-replica-updates=ON",
	)
	if o.SemiSyncSource {
		a = append(a,
			"--plugin-load-add=semisync_source.so",
			"--rpl-semi-sync-source-enabled=ON",
			"--rpl-semi-sync-source-wait-point=AFTER_SYNC",
			"--rpl-semi-sync-source-timeout="+ms(o.SemiSyncTimeout),
		)
	}
	if o.SemiSyncReplica {
		a = append(a,
			"--plugin-load-add=semisync_replica.so",
			"--rpl-semi-sync-replica-enabled=ON",
		)
	}
	return a
}

func (m mysql) templateArgs(layout) []string { return []string{"--skip-networking", "--skip-log-bin"} }

func (m mysql) accountSQL(rootHosts []string) []string {
	pw := func(p string) string { return "IDENTIFIED WITH caching_sha2_password BY " + quote(p) }
	var q []string
	for _, h := range rootHosts {
		q = append(q, "ALTER USER "+quote(rootUser)+"@"+quote(h)+" "+pw(rootPassword))
	}
	return append(q,
		"CREATE USER IF NOT EXISTS "+quote(rootUser)+"@'%' "+pw(rootPassword),
		"GRANT ALL PRIVILEGES ON *.* TO "+quote(rootUser)+"@'%' WITH GRANT OPTION",
		"CREATE USER "+quote(replUser)+"@'%' "+pw(replPassword),
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO "+quote(replUser)+"@'%'",
	)
}

func (m mysql) templateParent() (string, error) {
	return filepath.Join(m.chroot, "var/lib/binlogsvr/templates"), nil
}

func (m mysql) defaultParent() string { return filepath.Join(m.chroot, "tmp") }
