package logger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The version gate for entry encodings.
//
// Every member reports in the log the newest encoding it reads (Meta
// MetaEncodingReport, proposed by reportEncodingLoop once the member has a
// leader). A member proposes a command in an encoding above EncodingV1 only
// when every member of the group (loggers and learners, by a linearizable
// read of the membership) has reported reading it. A member that never
// reported (an older binary) counts as EncodingV1. So in a group of mixed
// versions, during a rolling upgrade, every entry is one that every member
// applies alike; the newer encoding starts once the last member runs the
// newer binary.
//
// The caller's duty: do not add a member running an older binary to a group
// that already writes a newer encoding; it stops at the first such entry
// (NewerEncodingError), and the group goes on without it.

// MetaEncodingReport (with a member id) holds the newest encoding the member
// reads, in decimal.
const MetaEncodingReport = "member.%d.encoding"

// WriteEncoding is the newest encoding every member of the group reads:
// the encoding SetSource is proposed in now. It is EncodingV1 when the
// membership or a report cannot be read.
func (n *Node) WriteEncoding(ctx context.Context) (byte, error) {
	r := n.Reader()
	if r == nil {
		return EncodingV1, ErrClosed
	}
	m, err := n.Membership(ctx)
	if err != nil {
		return EncodingV1, err
	}
	v := n.maxEncoding()
	for _, ids := range []map[uint64]string{m.Loggers, m.Learners} {
		for id := range ids {
			got, err := reportedEncoding(r, id)
			if err != nil {
				return EncodingV1, err
			}
			v = min(v, got)
		}
	}
	return v, nil
}

// reportedEncoding is member id's report; EncodingV1 if it has none.
func reportedEncoding(r *Reader, id uint64) (byte, error) {
	b, ok, err := r.Meta(fmt.Sprintf(MetaEncodingReport, id))
	if err != nil || !ok {
		return EncodingV1, err
	}
	v, err := strconv.ParseUint(string(b), 10, 8)
	if err != nil || v < EncodingV1 {
		return EncodingV1, nil // NB: an unreadable report counts as the oldest
	}
	return byte(v), nil
}

// encodeFor encodes c for Propose: SetSource in the gate's encoding, a
// Rotate in EncodingV3 only (ErrEncodingNotReady until every member reads
// it), every other kind in EncodingV1 (they have no newer form).
func (n *Node) encodeFor(ctx context.Context, c Command) ([]byte, error) {
	switch c.(type) {
	case *SetSource, *Rotate:
	default:
		return Encode(c), nil
	}
	v, err := n.WriteEncoding(ctx)
	if err != nil {
		n.log.Debug("version gate: proposing in encoding 1", "err", err)
	}
	if _, ok := c.(*Rotate); ok {
		if v < EncodingV3 {
			return nil, fmt.Errorf("%w: a rotate needs encoding %d, and the group writes %d (%v): upgrade every member's binlogsvr, then retry",
				ErrEncodingNotReady, EncodingV3, v, err)
		}
		return EncodeAs(c, EncodingV3), nil
	}
	return EncodeAs(c, v), nil
}

// ErrEncodingNotReady: the command needs an entry encoding that not every
// member of the group reads yet (during a rolling upgrade, or while a
// member's report is not in the log yet). Nothing was proposed.
var ErrEncodingNotReady = errors.New("logger: the group does not read the encoding this command needs yet")

// reportEncodingLoop records this member's MaxEncoding in the log, once.
func (n *Node) reportEncodingLoop() {
	defer n.wg.Done()
	key := fmt.Sprintf(MetaEncodingReport, n.cfg.ReplicaID)
	want := strconv.Itoa(int(n.maxEncoding()))
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if r := n.Reader(); r != nil {
			if v, ok, err := r.Meta(key); err == nil && ok && string(v) == want {
				return
			}
			if _, ok := n.LeaderID(); ok {
				ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
				res, err := n.Propose(ctx, &Meta{Key: key, Value: []byte(want)})
				cancel()
				if err == nil && res.Code.Stored() {
					n.log.Info("reported the log encodings this member reads", "max_encoding", want)
					return
				}
			}
		}
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// maxEncoding is the newest encoding this member reads.
func (n *Node) maxEncoding() byte {
	if n.cfg.MaxEncoding >= EncodingV1 && n.cfg.MaxEncoding < MaxEncoding {
		return n.cfg.MaxEncoding
	}
	return MaxEncoding
}
