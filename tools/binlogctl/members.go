package main

import (
	"errors"
	"io"
)

// membersCommands returns the membership commands (issue 5): members,
// add-learner, demote, remove, transfer-leader, weight, purge. "promote"
// is registered in failover.go: with --to it is a switchover, otherwise it
// calls cmdPromoteMember.
func membersCommands() map[string]command { return map[string]command{} }

// cmdPromoteMember promotes a learner to a voting logger.
func cmdPromoteMember(c *client, args []string, stdout, stderr io.Writer) error {
	return errors.New("promote of a learner is not built yet")
}
