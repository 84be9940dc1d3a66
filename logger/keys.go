package logger

import (
	"encoding/binary"
	"fmt"
)

// Key schema of the state machine's Pebble database. Every key starts with
// one prefix byte; numbers are big-endian so that keys sort by file, then
// position.
//
//	s                      the State (JSON)
//	a                      the last applied raft index (8 bytes)
//	f <file:4>             FileMeta (JSON)
//	d <file:4> <pos:8>     a chunk of file bytes starting at pos
//	x <file:4> <pos:8>     TxnRecord for the transaction starting at pos
//	g <gtid>               <file:4> <pos:8> of the transaction with that GTID
//	m <key>                a Meta value
//	r                      marker: a snapshot recovery is in progress (shell only)
//	l                      member-local retention: first file still held here (shell only)
const (
	prefixState     = 's'
	prefixApplied   = 'a'
	prefixFile      = 'f'
	prefixData      = 'd'
	prefixTxn       = 'x'
	prefixGTID      = 'g'
	prefixMeta      = 'm'
	prefixRecovery  = 'r'
	prefixLocalPurg = 'l'
)

var (
	keyState     = []byte{prefixState}
	keyApplied   = []byte{prefixApplied}
	keyRecovery  = []byte{prefixRecovery}
	keyLocalPurg = []byte{prefixLocalPurg}
)

func fileKey(file uint32) []byte {
	k := make([]byte, 5)
	k[0] = prefixFile
	binary.BigEndian.PutUint32(k[1:], file)
	return k
}

func posKey(prefix byte, file uint32, pos uint64) []byte {
	k := make([]byte, 13)
	k[0] = prefix
	binary.BigEndian.PutUint32(k[1:], file)
	binary.BigEndian.PutUint64(k[5:], pos)
	return k
}

func dataKey(file uint32, pos uint64) []byte { return posKey(prefixData, file, pos) }
func txnKey(file uint32, pos uint64) []byte  { return posKey(prefixTxn, file, pos) }

func decodePosKey(k []byte) (file uint32, pos uint64, err error) {
	if len(k) != 13 {
		return 0, 0, fmt.Errorf("logger: bad position key length %d", len(k))
	}
	return binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint64(k[5:]), nil
}

func gtidKey(gtid string) []byte { return append([]byte{prefixGTID}, gtid...) }
func metaKey(key string) []byte  { return append([]byte{prefixMeta}, key...) }

func encodeFilePos(file uint32, pos uint64) []byte {
	v := make([]byte, 12)
	binary.BigEndian.PutUint32(v, file)
	binary.BigEndian.PutUint64(v[4:], pos)
	return v
}

func decodeFilePos(v []byte) (uint32, uint64, error) {
	if len(v) != 12 {
		return 0, 0, fmt.Errorf("logger: bad file position value length %d", len(v))
	}
	return binary.BigEndian.Uint32(v), binary.BigEndian.Uint64(v[4:]), nil
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	for i := len(e) - 1; i >= 0; i-- {
		e[i]++
		if e[i] != 0 {
			return e[:i+1]
		}
	}
	return nil
}

// FileName returns the fleet's name of binlog file number n.
func FileName(n uint32) string { return fmt.Sprintf("binlog.%06d", n) }

// ParseFileName returns the number of a fleet binlog file name.
func ParseFileName(name string) (uint32, error) {
	var n uint32
	if len(name) < len("binlog.000001") || name[:7] != "binlog." {
		return 0, fmt.Errorf("logger: %q is not a binlog file name of this fleet (binlog.NNNNNN)", name)
	}
	for _, c := range name[7:] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("logger: %q is not a binlog file name of this fleet (binlog.NNNNNN)", name)
		}
		if n > (1<<32-1)/10 {
			return 0, fmt.Errorf("logger: file number in %q out of range", name)
		}
		n = n*10 + uint32(c-'0')
	}
	if n == 0 {
		return 0, fmt.Errorf("logger: %q: file numbers start at 1", name)
	}
	return n, nil
}
