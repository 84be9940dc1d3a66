package learner

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
)

// Replica holds: a replica keeps the files it still has to read from a
// group purge while it is connected (its member reports it), and, once it
// disconnected (it stopped, or --dump-write-timeout dropped it because it
// stopped reading: relay_log_space_limit), for --replica-hold-ttl after.
//
// The holds live in the log, as Meta keys replica_hold.SERVER_ID[.UUID]:
// each serving member records its replicas' files when one changes, every
// ttl/10 while connected, and once at disconnection. NB: in the log, not in
// the memory of the leader or of the serving member, so that a hold
// survives a leader change and the restart of the member the replica read
// from. It is cheap: a few hundred bytes per replica per binlog file or
// disconnection. The leader deletes expired holds.

// MetaReplicaHoldPrefix prefixes the Meta keys of replica holds.
const MetaReplicaHoldPrefix = "replica_hold."

// ReplicaHold is one replica's hold on the log.
type ReplicaHold = api.ReplicaHold

// HoldKey is the Meta key of a replica's hold (without the prefix).
func HoldKey(serverID uint32, uuid string) string {
	if uuid == "" {
		return fmt.Sprint(serverID)
	}
	return fmt.Sprintf("%d.%s", serverID, uuid)
}

// same reports whether two sightings are the same replica: the same
// server_id, and the same uuid where both are known.
func same(aID uint32, aUUID string, bID uint32, bUUID string) bool {
	return aID == bID && (aUUID == "" || bUUID == "" || aUUID == bUUID)
}

// ReplicaHolds combines the holds recorded in the log with the replicas
// the members report connected now: a connected replica holds what it
// reads now (and its record is superseded); a disconnected one holds its
// recorded file until ttl after it was last seen; expired are the records
// past that. Pure.
func ReplicaHolds(recs []ReplicaHold, members []Member, now time.Time, ttl time.Duration) (holds, expired []ReplicaHold) {
	var live []ReplicaHold
	for _, m := range members {
		for _, r := range m.Replicas {
			if r.File == 0 {
				continue
			}
			live = append(live, ReplicaHold{ServerID: r.ServerID, UUID: r.UUID, File: r.File, Pos: r.Pos, Member: m.ID, Remote: r.Remote, Seen: now, Connected: true})
		}
	}
	holds = append(holds, live...)
	for _, rec := range recs {
		superseded := false
		for _, l := range live {
			if same(l.ServerID, l.UUID, rec.ServerID, rec.UUID) {
				superseded = true
			}
		}
		if superseded {
			continue
		}
		rec.Connected = false
		rec.AgeSeconds = max(now.Sub(rec.Seen), 0).Seconds()
		rec.Expires = rec.Seen.Add(ttl)
		if now.After(rec.Expires) {
			expired = append(expired, rec)
			continue
		}
		holds = append(holds, rec)
	}
	sort.Slice(holds, func(i, j int) bool {
		if holds[i].ServerID != holds[j].ServerID {
			return holds[i].ServerID < holds[j].ServerID
		}
		return holds[i].Member < holds[j].Member
	})
	return holds, expired
}

// readHolds returns the holds recorded in the log.
func readHolds(rd *logger.Reader) (map[string]ReplicaHold, error) {
	kv, err := rd.MetaPrefix(MetaReplicaHoldPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]ReplicaHold{}
	for k, v := range kv {
		var h ReplicaHold
		if json.Unmarshal(v, &h) == nil && h.ServerID != 0 {
			out[strings.TrimPrefix(k, MetaReplicaHoldPrefix)] = h
		}
	}
	return out, nil
}

// holdRefresh is how often a connected replica's hold is rewritten with a
// new Seen, so that a member killed while serving it leaves a hold that
// lasts about the ttl.
func (mg *Manager) holdRefresh() time.Duration {
	return min(max(mg.cfg.ReplicaHoldTTL/10, time.Second), time.Hour)
}

// trackHolds records this member's replicas' holds in the log: a new
// replica or a new file, a refresh every holdRefresh, and the
// disconnection. Called from Run's goroutine only.
func (mg *Manager) trackHolds(ctx context.Context, recs map[string]ReplicaHold) {
	if mg.d.Replicas == nil || mg.cfg.ReplicaHoldTTL <= 0 {
		return
	}
	self := mg.d.Node.Config().ReplicaID
	now := time.Now()
	live := map[string]Replica{}
	for _, r := range mg.d.Replicas() {
		if r.ServerID == 0 || r.File == 0 {
			continue // NB: a client without a server_id has no identity to hold for
		}
		live[HoldKey(r.ServerID, r.UUID)] = r
	}
	for k, r := range live {
		last, ok := mg.recorded[k]
		if ok && last.File == r.File && now.Sub(last.Seen) < mg.holdRefresh() {
			continue
		}
		h := ReplicaHold{ServerID: r.ServerID, UUID: r.UUID, File: r.File, Pos: r.Pos, Member: self, Remote: r.Remote, Seen: now}
		if mg.writeHold(ctx, k, h) == nil {
			mg.recorded[k] = h
		}
	}
	for k, last := range mg.recorded {
		if _, ok := live[k]; ok {
			continue
		}
		if cur, ok := recs[k]; ok && cur.Member != self && cur.Seen.After(last.Seen) {
			delete(mg.recorded, k) // NB: it reads from another member now, which records it
			continue
		}
		h := last
		h.Seen = now
		if mg.writeHold(ctx, k, h) == nil {
			delete(mg.recorded, k)
			mg.log.Info("replica disconnected: the group purge keeps its files for --replica-hold-ttl", "server_id", h.ServerID, "uuid", h.UUID,
				"remote", h.Remote, "file", logger.FileName(h.File), "pos", h.Pos, "ttl", mg.cfg.ReplicaHoldTTL)
		}
	}
}

func (mg *Manager) writeHold(ctx context.Context, key string, h ReplicaHold) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	var v []byte
	if h.File != 0 {
		v = b
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := mg.d.Node.Propose(pctx, &logger.Meta{Key: MetaReplicaHoldPrefix + key, Value: v})
	if err != nil {
		mg.log.Debug("recording a replica's hold", "key", key, "err", err)
		return err
	}
	if !res.Code.Stored() {
		return fmt.Errorf("learner: recording a replica's hold: %s: %s", res.Code, res.Message)
	}
	return nil
}

// dropExpired deletes expired holds from the log (leader only).
func (mg *Manager) dropExpired(ctx context.Context, v View, expired []ReplicaHold) {
	if v.Leader != mg.d.Node.Config().ReplicaID {
		return
	}
	for _, h := range expired {
		if mg.writeHold(ctx, HoldKey(h.ServerID, h.UUID), ReplicaHold{ServerID: h.ServerID}) == nil {
			mg.log.Info("replica hold expired: its files may be purged now", "server_id", h.ServerID, "uuid", h.UUID, "file", logger.FileName(h.File),
				"disconnected_for", time.Duration(h.AgeSeconds*float64(time.Second)).Round(time.Second), "ttl", mg.cfg.ReplicaHoldTTL)
		}
	}
}
