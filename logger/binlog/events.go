package binlog

import (
	"encoding/binary"
	"fmt"
)

// RotateEvent builds a ROTATE_EVENT: body = nextPos (uint64) then the file
// name with no NUL. For the fake rotate that opens a dump, pass ts=0,
// logPos=0 and flags=FlagArtificial; for the real last event of a file, the
// event's own end position and flags=0.
func RotateEvent(ts, serverID uint32, logPos uint32, flags uint16, nextFile string, nextPos uint64, alg ChecksumAlg) []byte {
	b := make([]byte, 0, 8+len(nextFile))
	b = binary.LittleEndian.AppendUint64(b, nextPos)
	b = append(b, nextFile...)
	return NewEvent(TypeRotate, ts, serverID, logPos, flags, b, alg)
}

// HeartbeatEvent builds a HEARTBEAT_LOG_EVENT (27), as both MySQL and
// MariaDB send it: ts=0, flags=0, log_pos = where the next event will start,
// body = the current binlog file name with no NUL.
func HeartbeatEvent(serverID uint32, logPos uint32, file string, alg ChecksumAlg) []byte {
	return NewEvent(TypeHeartbeat, 0, serverID, logPos, 0, []byte(file), alg)
}

// Heartbeat v2 field types (MySQL codecs/binary.h).
const (
	hbEndMark  = 0
	hbFilename = 1
	hbPosition = 2
)

// HeartbeatV2Event builds a MySQL HEARTBEAT_LOG_EVENT_V2 (41), which MySQL
// 8.0.26+ sends to a replica that set the dump flag for it. The body is a
// list of type/length/value fields, each number a length-encoded integer:
// the file name (type 1), the position (type 2, its value itself
// length-encoded), then the end mark (type 0). The position lives in the
// body because it may pass 4 GiB; the header's ts and log_pos are 0.
func HeartbeatV2Event(serverID uint32, file string, pos uint64, alg ChecksumAlg) []byte {
	b := make([]byte, 0, len(file)+24)
	b = AppendLenEnc(b, hbFilename)
	b = AppendLenEnc(b, uint64(len(file)))
	b = append(b, file...)
	b = AppendLenEnc(b, hbPosition)
	b = AppendLenEnc(b, uint64(LenEncSize(pos)))
	b = AppendLenEnc(b, pos)
	b = AppendLenEnc(b, hbEndMark)
	return NewEvent(TypeHeartbeatV2, 0, serverID, 0, 0, b, alg)
}

// PrepareFDE returns a copy of a FORMAT_DESCRIPTION_EVENT fit to start a
// fleet file: FlagInUse cleared in the header, log_pos set, and the checksum
// recomputed if the FDE says CRC32. The FDE's own checksum must be valid,
// computed with or without FlagInUse (servers compute it without the flag
// and set the flag in place, so both occur); otherwise ErrBadChecksum.
func PrepareFDE(fde []byte, logPos uint32) ([]byte, error) {
	alg, err := FDEChecksumAlg(fde)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), fde...)
	flags := binary.LittleEndian.Uint16(out[offFlags:])
	binary.LittleEndian.PutUint16(out[offFlags:], flags&^FlagInUse)
	if alg == ChecksumCRC32 && !crcOK(fde) && !crcOK(out) {
		return nil, fmt.Errorf("%w: format description event", ErrBadChecksum)
	}
	binary.LittleEndian.PutUint32(out[offLogPos:], logPos)
	if alg == ChecksumCRC32 {
		n := len(out) - ChecksumLen
		out = appendCRC(out[:n])
	}
	return out, nil
}

// LenEncSize returns the size of v as a MySQL length-encoded integer.
func LenEncSize(v uint64) int {
	switch {
	case v < 251:
		return 1
	case v < 1<<16:
		return 3
	case v < 1<<24:
		return 4
	}
	return 9
}

// AppendLenEnc appends v as a MySQL length-encoded integer
// (net_store_length): 1 byte below 251, else 0xfc+2, 0xfd+3 or 0xfe+8 bytes.
func AppendLenEnc(b []byte, v uint64) []byte {
	switch LenEncSize(v) {
	case 1:
		return append(b, byte(v))
	case 3:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case 4:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	}
	return binary.LittleEndian.AppendUint64(append(b, 0xfe), v)
}
