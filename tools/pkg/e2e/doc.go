// Package e2e tests the Debian package and the systemd integration with the
// real tools: tools/pkg/build-deb.sh builds the package, dpkg installs it
// into this machine (root; removed and purged afterwards, even on failure),
// systemd-analyze verifies the installed unit, and a real binlogsvr speaks
// the notify protocol (READY=1, WATCHDOG=1, STOPPING=1) to a socket the
// test listens on in place of systemd, which need not run as PID 1 here.
package e2e
