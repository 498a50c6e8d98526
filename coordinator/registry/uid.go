package registry

import (
	"encoding/hex"
	"math/big"
)

// DeviceUID derives the version's DICOM-style UID from the weights'
// SHA-256 (hex): "2.25." followed by the decimal value of the hash's first
// 128 bits, the form DICOM (PS3.5 B.2) gives to UUID-derived UIDs. It is
// at most 44 characters, within DICOM's 64, and changes whenever the
// weights change, so a finding can name the exact model. A hash that is
// not at least 32 hex digits gives "".
func DeviceUID(weightsSHA256 string) string {
	if len(weightsSHA256) < 32 {
		return ""
	}
	b, err := hex.DecodeString(weightsSHA256[:32])
	if err != nil {
		return ""
	}
	return "2.25." + new(big.Int).SetBytes(b).String()
}
