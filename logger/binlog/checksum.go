package binlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
)

// ChecksumAlg is the binlog checksum algorithm, as in an FDE's alg byte.
type ChecksumAlg byte

// The algorithms a server can use.
const (
	ChecksumNone  ChecksumAlg = 0
	ChecksumCRC32 ChecksumAlg = 1
)

// ChecksumLen is the length of a CRC32 trailer.
const ChecksumLen = 4

// String returns the name used by @@binlog_checksum: "NONE" or "CRC32".
func (a ChecksumAlg) String() string {
	switch a {
	case ChecksumNone:
		return "NONE"
	case ChecksumCRC32:
		return "CRC32"
	}
	return "ChecksumAlg(" + strconv.Itoa(int(a)) + ")"
}

// FDE body layout (offsets from the start of the event).
const (
	offFDEBinlogVersion = HeaderLen
	offFDEServerVersion = HeaderLen + 2
	fdeServerVersionLen = 50
	offFDECreated       = offFDEServerVersion + fdeServerVersionLen
	offFDEHeaderLen     = offFDECreated + 4
	offFDEPostHeaders   = offFDEHeaderLen + 1
)

// appendCRC appends the CRC32 (IEEE, as zlib) of ev.
func appendCRC(ev []byte) []byte {
	return binary.LittleEndian.AppendUint32(ev, crc32.ChecksumIEEE(ev))
}

// crcOK reports whether the last 4 bytes of ev are the CRC32 of the rest.
func crcOK(ev []byte) bool {
	n := len(ev) - ChecksumLen
	return crc32.ChecksumIEEE(ev[:n]) == binary.LittleEndian.Uint32(ev[n:])
}

// VerifyChecksum checks ev's CRC32 trailer if alg is ChecksumCRC32 (a
// mismatch is ErrBadChecksum), and for any alg that ev is one whole event:
// event_size equal to len(ev) (ErrMalformed otherwise).
func VerifyChecksum(ev []byte, alg ChecksumAlg) error {
	if _, err := body(ev, alg); err != nil {
		return err
	}
	if alg == ChecksumCRC32 && !crcOK(ev) {
		n := len(ev) - ChecksumLen
		return fmt.Errorf("%w: type %d event of %d bytes: stored %08x, computed %08x", ErrBadChecksum,
			ev[offType], len(ev), binary.LittleEndian.Uint32(ev[n:]), crc32.ChecksumIEEE(ev[:n]))
	}
	return nil
}

// Relocate rewrites, in place, the header's log_pos (the position of the
// next event) and, if alg is ChecksumCRC32, the CRC32 trailer. Nothing else
// changes. It first checks the event as VerifyChecksum does and leaves ev
// untouched on error, so a corrupted event is never given a valid CRC.
func Relocate(ev []byte, logPos uint32, alg ChecksumAlg) error {
	if err := VerifyChecksum(ev, alg); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(ev[offLogPos:], logPos)
	if alg == ChecksumCRC32 {
		n := len(ev) - ChecksumLen
		binary.LittleEndian.PutUint32(ev[n:], crc32.ChecksumIEEE(ev[:n]))
	}
	return nil
}

// FDEChecksumAlg reads the checksum algorithm byte of a
// FORMAT_DESCRIPTION_EVENT. The byte sits just before the 4-byte checksum
// room, which an FDE carries whatever the algorithm. An FDE from a server
// older than checksums (MySQL < 5.6.1, MariaDB < 5.3) has no such byte and
// gives ChecksumNone. An algorithm other than NONE or CRC32 is ErrMalformed.
func FDEChecksumAlg(fde []byte) (ChecksumAlg, error) {
	if err := checkFDE(fde); err != nil {
		return 0, err
	}
	if !versionHasChecksum(ServerVersion(fde)) {
		return ChecksumNone, nil
	}
	if len(fde) < offFDEPostHeaders+1+ChecksumLen {
		return 0, fmt.Errorf("%w: FDE of %d bytes has no room for the checksum algorithm", ErrMalformed, len(fde))
	}
	switch a := ChecksumAlg(fde[len(fde)-ChecksumLen-1]); a {
	case ChecksumNone, ChecksumCRC32:
		return a, nil
	default:
		return 0, fmt.Errorf("%w: FDE names unknown checksum algorithm %d", ErrMalformed, byte(a))
	}
}

// ServerVersion returns the server version string of an FDE, or "" if fde
// is too short to hold one. It does not check the event type.
func ServerVersion(fde []byte) string {
	if len(fde) < offFDECreated {
		return ""
	}
	v := fde[offFDEServerVersion:offFDECreated]
	if i := bytes.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}

// checkFDE checks that fde is one whole FORMAT_DESCRIPTION_EVENT long enough
// for its fixed post-header.
func checkFDE(fde []byte) error {
	h, err := ParseHeader(fde)
	if err != nil {
		return err
	}
	if h.Type != TypeFDE {
		return fmt.Errorf("%w: type %d event where a format description event (15) was expected", ErrMalformed, h.Type)
	}
	if int(h.EventSize) != len(fde) {
		return fmt.Errorf("%w: FDE event_size %d, buffer holds %d bytes", ErrMalformed, h.EventSize, len(fde))
	}
	if len(fde) < offFDEPostHeaders {
		return fmt.Errorf("%w: FDE of %d bytes is shorter than its post-header", ErrMalformed, len(fde))
	}
	if fde[offFDEHeaderLen] != HeaderLen {
		return fmt.Errorf("%w: FDE declares a %d-byte event header, only %d is supported", ErrMalformed, fde[offFDEHeaderLen], HeaderLen)
	}
	return nil
}

// versionHasChecksum reports whether a server of this version writes the
// checksum algorithm byte in its FDE (MySQL 5.6.1+, MariaDB 5.3+).
func versionHasChecksum(v string) bool {
	min := [3]int{5, 6, 1}
	if isMariaDBVersion(v) {
		min = [3]int{5, 3, 0}
	}
	got := splitVersion(v)
	for i := range got {
		if got[i] != min[i] {
			return got[i] > min[i]
		}
	}
	return true
}

// splitVersion splits "X.Y.Zsuffix" into {X,Y,Z} as MySQL's
// do_server_version_split does: a missing part is 0, and a part above 255 or
// a first number not followed by '.' makes the whole version {0,0,0}.
func splitVersion(v string) [3]int {
	var out [3]int
	for i := range out {
		j := 0
		for j < len(v) && j < 4 && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		n := 0
		if j > 0 {
			n, _ = strconv.Atoi(v[:j]) // NB: at most 4 digits, cannot fail
		}
		if n > 255 || (i == 0 && (j == len(v) || v[j] != '.')) {
			return [3]int{}
		}
		out[i] = n
		v = v[j:]
		if len(v) > 0 && v[0] == '.' {
			v = v[1:]
		}
	}
	return out
}
