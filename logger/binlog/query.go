package binlog

import (
	"encoding/binary"
	"fmt"
)

// Event types that end a transaction, beyond those of header.go: the
// ingest's cutter and the dump's ACK requests both look for them.
const (
	TypeXAPrepare          byte = 38  // MySQL XA_PREPARE_LOG_EVENT
	TypeTransactionPayload byte = 40  // MySQL TRANSACTION_PAYLOAD_EVENT (a compressed transaction)
	TypeMariaDBXAPrepare   byte = 167 // MariaDB XA_PREPARE_LOG_EVENT
)

// QueryText returns a QUERY_EVENT's statement as written (not trimmed).
// The post-header is thread id 4, exec time 4, db length 1, error code 2,
// status variables length 2; then the status variables, the db and a NUL.
func QueryText(ev []byte, alg ChecksumAlg) ([]byte, error) {
	end := len(ev)
	if alg == ChecksumCRC32 {
		end -= ChecksumLen
	}
	const post = 13
	if end < HeaderLen+post {
		return nil, fmt.Errorf("%w: query event of %d bytes", ErrMalformed, len(ev))
	}
	p := ev[HeaderLen:end]
	dbLen := int(p[8])
	varsLen := int(binary.LittleEndian.Uint16(p[11:13]))
	off := post + varsLen + dbLen + 1
	if off > len(p) {
		return nil, fmt.Errorf("%w: query event lengths exceed its %d bytes", ErrMalformed, len(ev))
	}
	return p[off:], nil
}

// SemiSyncMagic starts the semi-sync header of an event packet and a
// replica's ACK packet.
const SemiSyncMagic = 0xEF

// AppendSemiSyncAck appends the payload of a semi-sync ACK (what a replica
// sends): 0xEF, the 8-byte end position, the file name without a NUL.
func AppendSemiSyncAck(b []byte, file string, pos uint64) []byte {
	b = append(b, SemiSyncMagic)
	b = binary.LittleEndian.AppendUint64(b, pos)
	return append(b, file...)
}

// ParseSemiSyncAck decodes an ACK payload.
func ParseSemiSyncAck(p []byte) (file string, pos uint64, err error) {
	if len(p) < 9 || p[0] != SemiSyncMagic {
		return "", 0, fmt.Errorf("%w: a semi-sync ACK of %d bytes", ErrMalformed, len(p))
	}
	return string(p[9:]), binary.LittleEndian.Uint64(p[1:9]), nil
}
