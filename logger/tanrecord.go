package logger

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/lni/vfs"
)

// NB: dragonboat keeps tan's record reader and writer in an internal
// package; this is the part of its format (internal/tan/record.go) that
// zeroedLogFS needs to find where a log file's records end.

// tan's record format (pebble's legacy one, with tan's checksum): 32 KiB
// blocks of chunks, each with a 7-byte header (checksum 4, length 2, type
// 1; type 0 is never written) over its type and payload. A block always
// starts with a chunk header; fewer than 7 bytes left at a block's end are
// padding. A record is one full chunk, or first, middles, last.
const (
	tanBlockSize  = 32 << 10
	tanHeaderSize = 7

	tanFullChunk   = 1
	tanFirstChunk  = 2
	tanMiddleChunk = 3
	tanLastChunk   = 4
)

func tanCRC(b []byte) uint32 { return uint32(xxhash.Sum64(b)) }

// logEnd returns where the last complete record of a tan log file ends:
// records are read from the start until an all-zero chunk header (zeros
// written ahead, or a crash's unwritten tail) or the file's end.
//
// A crash during fdatasync can leave the last record torn: the sectors of
// a write over zeros reach the disk in any order, so it may have holes of
// zeros. A broken record is taken for that, and the log ends before it,
// only if no complete record starts after it; otherwise the log is
// corrupt, and logEnd says so rather than drop records that were synced.
func logEnd(f vfs.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	buf := make([]byte, tanBlockSize)
	var good int64        // where the last complete record ends
	recStart := int64(-1) // the first chunk of a record not yet complete
	for base := int64(0); base < size; base += tanBlockSize {
		n := int(min(tanBlockSize, size-base))
		if _, err := f.ReadAt(buf[:n], base); err != nil && err != io.EOF {
			return 0, err
		}
		for i := 0; i+tanHeaderSize <= n; {
			h := buf[i : i+tanHeaderSize]
			if allZeroBytes(h) {
				return good, nil
			}
			length, typ, off := int(h[4])|int(h[5])<<8, h[6], base+int64(i)
			ok := i+tanHeaderSize+length <= n && tanCRC(buf[i+6:i+tanHeaderSize+length]) == binary.LittleEndian.Uint32(h)
			switch {
			case !ok:
			case typ == tanFullChunk && recStart < 0:
				good = off + tanHeaderSize + int64(length)
			case typ == tanFirstChunk && recStart < 0:
				recStart = off
			case typ == tanMiddleChunk && recStart >= 0:
			case typ == tanLastChunk && recStart >= 0:
				good, recStart = off+tanHeaderSize+int64(length), -1
			default:
				ok = false
			}
			if !ok {
				broken := off
				if recStart >= 0 {
					broken = recStart
				}
				return good, recordAfter(f, buf, broken, size)
			}
			i += tanHeaderSize + length
		}
	}
	return good, nil
}

// recordAfter returns an error if a complete record (a valid full or
// first chunk) starts at a block boundary after the broken record at
// broken, before zeros or the file's end.
func recordAfter(f vfs.File, buf []byte, broken, size int64) error {
	for base := (broken/tanBlockSize + 1) * tanBlockSize; base < size; base += tanBlockSize {
		n := int(min(tanBlockSize, size-base))
		if _, err := f.ReadAt(buf[:n], base); err != nil && err != io.EOF {
			return err
		}
		if n < tanHeaderSize || allZeroBytes(buf[:tanHeaderSize]) {
			return nil
		}
		length, typ := int(buf[4])|int(buf[5])<<8, buf[6]
		if (typ == tanFullChunk || typ == tanFirstChunk) && tanHeaderSize+length <= n &&
			tanCRC(buf[6:tanHeaderSize+length]) == binary.LittleEndian.Uint32(buf) {
			return fmt.Errorf("the record at offset %d is broken and a complete one follows at %d: the log is corrupt, not cut short by a crash; "+
				"rebuild this member from the group (remove it, delete its data directory, add it again)", broken, base)
		}
	}
	return nil
}

func allZeroBytes(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
