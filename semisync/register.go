package semisync

import "encoding/binary"

// registerPacket is COM_REGISTER_SLAVE for this member.
func registerPacket(serverID uint32, host string, port uint16) []byte {
	b := []byte{0x15}
	b = binary.LittleEndian.AppendUint32(b, serverID)
	b = append(b, byte(len(host)))
	b = append(b, host...)
	b = append(b, 0, 0) // user, password: empty, as real replicas send
	b = binary.LittleEndian.AppendUint16(b, port)
	b = binary.LittleEndian.AppendUint32(b, 0) // rank
	b = binary.LittleEndian.AppendUint32(b, 0) // master id
	return b
}
