#!/usr/bin/env bash
# install.sh: install the real servers that binlogsvr's tests, demo and benchmarks start through
# tools/sandbox. Run as root on Debian bookworm; safe to run again (it skips what is already there).
#
#   sudo bash tools/sandbox/install.sh
#
# It installs, from the machine's own apt sources:
#   - MariaDB 10.11 (mariadb-server, mariadb-client), debootstrap, sysbench and nftables (tools/netsim's
#     partitions). The packaged
#     mariadb service is stopped and disabled: the sandbox starts its own servers.
#   - The packaging and monitoring checks' tools (tools/pkg/e2e, tools/monitoring/e2e): systemd
#     (systemd-analyze verify; no running systemd needed), man-db, and prometheus (prometheus and
#     promtool; without its recommended exporters). Its packaged service is stopped and disabled
#     too: the tests start their own Prometheus on a private port.
#   - Oracle MySQL 9.7 (mysql-server-core, mysql-client-core) from Debian sid, in a debootstrap
#     chroot cached at ${BINLOGSVR_MYSQL_CHROOT:-/var/cache/binlogsvr/mysql-sid}. Its packages need a
#     newer C library than bookworm's, hence the chroot.
#
# Environment:
#   BINLOGSVR_MYSQL_CHROOT  where the MySQL chroot lives (default /var/cache/binlogsvr/mysql-sid)
#   BINLOGSVR_DEB_CACHE     where the chroot's downloaded .debs are kept between rebuilds
#                           (default /var/cache/binlogsvr/debs)
set -euo pipefail

CHROOT="${BINLOGSVR_MYSQL_CHROOT:-/var/cache/binlogsvr/mysql-sid}"
CHROOT="${CHROOT%/}"
DEB_CACHE="${BINLOGSVR_DEB_CACHE:-/var/cache/binlogsvr/debs}"
HOST_PACKAGES=(mariadb-server mariadb-client debootstrap sysbench nftables systemd man-db)
# Installed without their recommends: prometheus recommends exporters (node, ...) whose services
# the tests do not use.
HOST_PACKAGES_NORECS=(prometheus)
CHROOT_PACKAGES=(mysql-server-core mysql-client-core)
SOURCES=/etc/apt/sources.list.d/debian.sources

START=$(date +%s)
log() { printf '[install.sh +%ss] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { printf '[install.sh] FAILED: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (apt-get, debootstrap, chroot): sudo bash $0"
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------------------------------------
# 1. Host packages.
installed() { # installed PKG: true if dpkg reports PKG as fully installed
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}
install_missing() { # install_missing [APT_FLAG...] -- PKG...: apt-get install the PKGs not installed yet
	local flags=() missing=() p cand need_update=0
	while [[ $1 != -- ]]; do flags+=("$1"); shift; done
	shift
	for p in "$@"; do installed "$p" || missing+=("$p"); done
	if ((${#missing[@]} == 0)); then
		log "host packages already installed: $*"
		return
	fi
	for p in "${missing[@]}"; do
		cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
		if [[ -z $cand || $cand == "(none)" ]]; then need_update=1; fi
	done
	if ((need_update)); then
		log "apt-get update"
		apt-get update || die "apt-get update"
	fi
	log "apt-get install ${flags[*]} ${missing[*]}"
	apt-get install -y "${flags[@]}" "${missing[@]}" || die "apt-get install ${missing[*]}"
}
install_missing -- "${HOST_PACKAGES[@]}"
install_missing --no-install-recommends -- "${HOST_PACKAGES_NORECS[@]}"

# The mariadb-server and prometheus packages start and enable their own services where they can.
# Tests start their own servers on private ports and directories, so the packaged ones must not run.
for svc in mariadb prometheus; do
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
		if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
			log "stopping and disabling the packaged $svc service (systemd)"
			systemctl disable --now "$svc" || die "systemctl disable --now $svc"
		fi
	else
		if [[ -x /etc/init.d/$svc ]]; then
			if service "$svc" status >/dev/null 2>&1; then
				log "stopping the packaged $svc service"
				service "$svc" stop || die "service $svc stop"
			fi
			update-rc.d "$svc" disable >/dev/null 2>&1 || true
		fi
	fi
	log "packaged $svc service is not running"
done

# ---------------------------------------------------------------------------------------------
# 2. The MySQL 9.7 chroot.
if [[ -x "$CHROOT/usr/sbin/mysqld" ]]; then
	log "MySQL chroot already present: $CHROOT ($(chroot "$CHROOT" /usr/sbin/mysqld --version 2>/dev/null || echo 'version unknown'))"
	log "done"
	exit 0
fi

[[ -r $SOURCES ]] || die "$SOURCES not found: cannot tell which Debian archive to use"
# The first URIs: line of the main (non-security) stanza is the archive to debootstrap from.
MIRROR=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$SOURCES")
[[ -n $MIRROR ]] || die "no URIs: line in $SOURCES"

PARENT=$(dirname "$CHROOT")
mkdir -p "$PARENT" "$DEB_CACHE/debootstrap" "$DEB_CACHE/apt"
WORK=$(mktemp -d "$CHROOT.tmp.XXXXXX")
chmod 755 "$WORK"
MOUNTED_PROC=0

cleanup() {
	local rc=$?
	if ((MOUNTED_PROC)) && mountpoint -q "$WORK/proc"; then umount "$WORK/proc" || umount -l "$WORK/proc" || true; fi
	if [[ -n ${WORK:-} && -d $WORK ]]; then
		# Never rm -rf a tree with something still mounted inside it.
		if grep -q " $WORK/" /proc/mounts; then
			printf '[install.sh] leaving %s in place: something is still mounted inside it\n' "$WORK" >&2
		else
			rm -rf "$WORK"
		fi
	fi
	if ((rc != 0)); then printf '[install.sh] FAILED (exit %d); see the output above\n' "$rc" >&2; fi
}
trap cleanup EXIT

log "debootstrap --variant=minbase sid $WORK $MIRROR (about 40 s)"
debootstrap --variant=minbase --cache-dir="$DEB_CACHE/debootstrap" sid "$WORK" "$MIRROR" ||
	die "debootstrap sid from $MIRROR (log: $WORK/debootstrap/debootstrap.log)"

printf '#!/bin/sh\nexit 101\n' >"$WORK/usr/sbin/policy-rc.d"
chmod 755 "$WORK/usr/sbin/policy-rc.d"
if ! mountpoint -q "$WORK/proc"; then
	mount -t proc proc "$WORK/proc" || die "mount proc in $WORK/proc"
	MOUNTED_PROC=1
fi

# Reuse .debs downloaded by an earlier build, and keep the new ones for the next.
cp -n "$DEB_CACHE/apt/"*.deb "$WORK/var/cache/apt/archives/" 2>/dev/null || true
rm -f "$WORK/etc/apt/apt.conf.d/docker-clean"

log "apt-get update in the chroot"
chroot "$WORK" apt-get -o Acquire::Check-Valid-Until=false update || die "apt-get update in the chroot"
log "apt-get install ${CHROOT_PACKAGES[*]} in the chroot (about 50 s)"
chroot "$WORK" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${CHROOT_PACKAGES[@]}" ||
	die "apt-get install ${CHROOT_PACKAGES[*]} in the chroot"
cp -n "$WORK/var/cache/apt/archives/"*.deb "$DEB_CACHE/apt/" 2>/dev/null || true

[[ -x "$WORK/usr/sbin/mysqld" ]] || die "mysqld missing after install"
VERSION=$(chroot "$WORK" /usr/sbin/mysqld --version) || die "mysqld --version in the chroot"
log "installed: $VERSION"

if ((MOUNTED_PROC)); then
	umount "$WORK/proc" || die "umount $WORK/proc"
	MOUNTED_PROC=0
fi

# Swap into place. A leftover (incomplete) $CHROOT is moved aside first.
if [[ -e $CHROOT ]]; then
	grep -q " $CHROOT/" /proc/mounts && die "$CHROOT is incomplete but has mounts inside; unmount them and retry"
	OLD=$(mktemp -d "$CHROOT.old.XXXXXX")
	mv -T "$CHROOT" "$OLD/x"
	rm -rf "$OLD"
fi
mv -T "$WORK" "$CHROOT" || die "rename $WORK to $CHROOT"
WORK=""
log "MySQL chroot ready: $CHROOT"
log "done"
