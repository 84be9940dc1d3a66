// Package e2e checks tools/monitoring with the real tools: promtool check
// rules and promtool test rules on alerts.yml and alerts_test.yml; every
// metric the dashboard and the alerts name against a running fleet's
// /metrics; and a real Prometheus (Debian's package) that scrapes a
// three-member fleet in front of a sandbox MariaDB source over HTTPS with
// the fleet's CA and a read token, and fires BinlogsvrMemberDown once a
// member is killed with SIGKILL.
package e2e
