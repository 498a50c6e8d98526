package jpeg2000

import "math/bits"

// parseCAP reads the CAP marker segment (T.814 A.5): Pcap, whose bit 32-i says
// Part i capabilities are used, then one 16-bit Ccap per bit set. Only Part 15
// is accepted; its Ccap needs nothing of the decoder (the
// code-block style says which blocks are HT, and the magnitude bound is checked
// per code-block), so it is only checked for presence.
func parseCAP(b []byte) error {
	if len(b) < 4 {
		return malformed("CAP of %d bytes", len(b))
	}
	pcap := uint32(u32(b))
	for part := 1; part <= 32; part++ {
		if pcap&(1<<uint(32-part)) != 0 && part != 15 {
			return unsupported("capabilities of JPEG 2000 Part %d (CAP marker)", part)
		}
	}
	if len(b) != 4+2*bits.OnesCount32(pcap) {
		return malformed("CAP of %d bytes for Pcap 0x%08x", len(b), pcap)
	}
	return nil
}
