#!/usr/bin/env bash
# build-deb.sh: the binlogsvr Debian package from release binaries, with dpkg-deb (no other tool).
#
#   bash tools/pkg/build-deb.sh BIN_DIR OUT_DIR VERSION      (make deb)
#
# BIN_DIR holds the release binlogsvr and binlogctl (make build); the package is written to
# OUT_DIR/binlogsvr_VERSION_amd64.deb. It holds the two binaries, the systemd unit, the config
# file and the secrets file (conffiles), man pages rendered from each binary's --help, and the
# README and docs. The maintainer scripts create the binlogsvr system user.
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 BIN_DIR OUT_DIR VERSION" >&2; exit 2; }
BIN=$1 OUT=$2 VERSION=$3
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ARCH=amd64
for b in binlogsvr binlogctl; do [[ -x $BIN/$b ]] || { echo "$0: $BIN/$b missing (make build)" >&2; exit 1; }; done

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
P=$STAGE/pkg
install -d "$P/DEBIAN" "$P/usr/bin" "$P/lib/systemd/system" "$P/etc/binlogsvr" \
	"$P/usr/share/man/man1" "$P/usr/share/doc/binlogsvr/docs"
install -m 0755 "$BIN/binlogsvr" "$BIN/binlogctl" "$P/usr/bin/"
install -m 0644 "$HERE/binlogsvr.service" "$P/lib/systemd/system/binlogsvr.service"
install -m 0644 "$HERE/binlogsvr.toml" "$P/etc/binlogsvr/binlogsvr.toml"
# NB: 0640 root:root here; postinst gives the group to binlogsvr once the user exists.
install -m 0640 "$HERE/env" "$P/etc/binlogsvr/env"
install -m 0644 "$ROOT/README.md" "$P/usr/share/doc/binlogsvr/README.md"
install -m 0644 "$ROOT"/docs/*.md "$P/usr/share/doc/binlogsvr/docs/"
install -d "$P/usr/share/doc/binlogsvr/monitoring"
install -m 0644 "$ROOT"/tools/monitoring/{alerts.yml,dashboard.json} "$P/usr/share/doc/binlogsvr/monitoring/"

# manpage NAME SUMMARY: a man page whose body is the binary's own --help, so it never drifts.
manpage() {
	local name=$1 summary=$2 help
	help=$("$BIN/$name" --help 2>&1) || { echo "$0: $name --help failed" >&2; exit 1; }
	{
		printf '.TH %s 1 "" "binlogsvr %s" "binlogsvr"\n' "${name^^}" "$VERSION"
		printf '.SH NAME\n%s \\- %s\n' "$name" "$summary"
		printf '.SH DESCRIPTION\nThe output of \\fB%s \\-\\-help\\fR:\n.PP\n.nf\n' "$name"
		# NB: roff escapes: a backslash doubles; a line may not begin with . or '.
		printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
		printf '.fi\n.SH FILES\n'
		printf '/etc/binlogsvr/binlogsvr.toml, /etc/binlogsvr/env, /var/lib/binlogsvr, binlogsvr.service\n'
		printf '.SH SEE ALSO\n/usr/share/doc/binlogsvr/README.md, /usr/share/doc/binlogsvr/docs/ALERTS.md\n'
	} | gzip -9n >"$P/usr/share/man/man1/$name.1.gz"
}
manpage binlogsvr "one member of a binlog server fleet in front of MySQL or MariaDB"
manpage binlogctl "look at and operate a binlogsvr fleet"

printf '/etc/binlogsvr/binlogsvr.toml\n/etc/binlogsvr/env\n' >"$P/DEBIAN/conffiles"
install -m 0755 "$HERE"/debian/{postinst,prerm,postrm} "$P/DEBIAN/"
SIZE=$(du -sk --exclude=DEBIAN "$P" | cut -f1)
cat >"$P/DEBIAN/control" <<CONTROL
Package: binlogsvr
Version: $VERSION
Architecture: $ARCH
Maintainer: binlogsvr developers <binlogsvr@localhost>
Installed-Size: $SIZE
Depends: passwd
Section: database
Priority: optional
Homepage: https://github.com/binlogsvr/binlogsvr
Description: fleet of binlog servers in front of MySQL and MariaDB
 binlogsvr members impersonate semi-sync replicas of an unmodified MySQL or
 MariaDB source, ACK each transaction only once a Raft majority of the fleet
 has it on disk, serve real replicas and CDC subscribers, and fail the source
 over without losing an acknowledged commit. binlogctl operates the fleet.
CONTROL
mkdir -p "$OUT"
DEB=$OUT/binlogsvr_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$P" "$DEB" >/dev/null
echo "$DEB"
