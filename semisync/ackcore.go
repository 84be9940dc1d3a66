package semisync

// ackCore is the acker's rule, with no I/O: the transactions of one
// session come in stream order with their outcomes, and it says which
// position to ACK, and when. The acker (session.go) is its driver: it
// reads the items, waits for outcomes, writes the ACK packets.
//
//   - Only a transaction the log reported stored may be ACKed (DESIGN.md
//     rule 1); a transaction not stored ends the session with no ACK for it
//     or anything after it (the next session resumes from the log).
//   - The source asks for an ACK on some transactions only (the last of
//     its group commit): the ACK names the latest stored one that asked.
//   - ACKs are coalesced: while outcomes are known at once, the pending
//     ACK waits, so one ACK covers a group; it goes out as soon as nothing
//     more is ready, or before the acker blocks on an outcome (never held
//     back behind an unknown one).
type ackCore struct {
	pending *ackItem // the latest stored transaction that asked for an ACK, not ACKed yet
}

// outcome takes the next item's outcome (err nil: stored). A non-nil
// return ends the session.
func (c *ackCore) outcome(it ackItem, err error) error {
	if err != nil {
		c.pending = nil // NB: the session ends here; the next one ACKs what the log holds
		return err
	}
	if it.cut.needAck {
		c.pending = &it
	}
	return nil
}

// take returns the ACK to send now, if any: called when no item is ready
// and before waiting for an outcome.
func (c *ackCore) take() *ackItem {
	a := c.pending
	c.pending = nil
	return a
}
