package dimse

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/concord-fl/concord/imaging"
)

// DefaultStorageClasses are the storage SOP classes C-GET proposes: the
// image types a site trains on. Eleven classes fill the 127 presentation
// contexts an association allows besides C-GET's own.
var DefaultStorageClasses = []string{
	"1.2.840.10008.5.1.4.1.1.1",     // Computed Radiography
	"1.2.840.10008.5.1.4.1.1.1.1",   // Digital X-Ray, for presentation
	"1.2.840.10008.5.1.4.1.1.1.1.1", // Digital X-Ray, for processing
	"1.2.840.10008.5.1.4.1.1.1.2",   // Digital Mammography, for presentation
	"1.2.840.10008.5.1.4.1.1.2",     // CT
	"1.2.840.10008.5.1.4.1.1.4",     // MR
	"1.2.840.10008.5.1.4.1.1.6.1",   // Ultrasound
	"1.2.840.10008.5.1.4.1.1.3.1",   // Ultrasound Multi-frame
	"1.2.840.10008.5.1.4.1.1.7",     // Secondary Capture
	"1.2.840.10008.5.1.4.1.1.20",    // Nuclear Medicine
	"1.2.840.10008.5.1.4.1.1.128",   // PET
}

// storageSyntaxGroups are the transfer syntaxes proposed for each storage
// class, one presentation context per group. An acceptor picks one syntax
// per context, so every compressed syntax gets a context of its own: the
// PACS can then send each instance as it stores it, without transcoding,
// and the pixel data arrives byte for byte. The uncompressed syntaxes
// share one context, where any choice keeps the pixel values.
var storageSyntaxGroups = [][]string{
	{imaging.TSExplicitLE, imaging.TSImplicitLE, imaging.TSExplicitBE},
	{imaging.TSDeflatedLE},
	{imaging.TSJPEGBaseline},
	{imaging.TSJPEGExtended},
	{imaging.TSJPEGLossless},
	{imaging.TSJPEGLossSV1},
	{imaging.TSJPEGLSLossl},
	{imaging.TSJPEGLSNear},
	{imaging.TSJ2KLossless},
	{imaging.TSJ2K},
	{imaging.TSRLE},
}

// acceptableSyntaxes are those the storage SCP accepts, in preference order.
var acceptableSyntaxes = func() []string {
	var out []string
	for _, g := range storageSyntaxGroups {
		out = append(out, g...)
	}
	return out
}()

// storageContexts proposes each class with each syntax group, with the
// SCP role for C-GET's sub-operations; context IDs are odd and start at first.
func storageContexts(classes []string, first byte) ([]presCtx, []roleSel) {
	var ctxs []presCtx
	var roles []roleSel
	id := first
	for _, cl := range classes {
		for _, g := range storageSyntaxGroups {
			ctxs = append(ctxs, presCtx{id: id, abstract: cl, syntaxes: g})
			id += 2
		}
		roles = append(roles, roleSel{uid: cl, scu: false, scp: true})
	}
	return ctxs, roles
}

// isStorageClass says whether a SOP class UID is a storage class (PS3.4
// annex B: under 1.2.840.10008.5.1.4.1.1.).
func isStorageClass(uid string) bool {
	return strings.HasPrefix(uid, "1.2.840.10008.5.1.4.1.1.")
}

// part10 wraps a received data set in a DICOM file: preamble, "DICM" and
// the file meta information in explicit VR little endian. The data set
// bytes follow unchanged, in the transfer syntax they travelled in (for
// deflate, still deflated, as Part 10 stores it).
func part10(sopClass, sopInstance, ts, sourceAET string, data []byte) []byte {
	var meta []byte
	put := func(elem uint16, vr string, v []byte, pad byte) {
		if len(v)%2 == 1 {
			v = append(append([]byte{}, v...), pad)
		}
		meta = binary.LittleEndian.AppendUint16(meta, 0x0002)
		meta = binary.LittleEndian.AppendUint16(meta, elem)
		meta = append(meta, vr...)
		if vr == "OB" {
			meta = append(meta, 0, 0)
			meta = binary.LittleEndian.AppendUint32(meta, uint32(len(v)))
		} else {
			meta = binary.LittleEndian.AppendUint16(meta, uint16(len(v)))
		}
		meta = append(meta, v...)
	}
	put(0x0001, "OB", []byte{0, 1}, 0)
	put(0x0002, "UI", []byte(sopClass), 0)
	put(0x0003, "UI", []byte(sopInstance), 0)
	put(0x0010, "UI", []byte(ts), 0)
	put(0x0012, "UI", []byte(imaging.ImplementationClassUID), 0)
	put(0x0013, "SH", []byte(implVersion), ' ')
	if sourceAET != "" {
		put(0x0016, "AE", []byte(sourceAET), ' ')
	}
	out := make([]byte, 128, 128+4+12+len(meta)+len(data))
	out = append(out, "DICM"...)
	out = append(out, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(meta)))
	out = append(out, meta...)
	return append(out, data...)
}

// checkStored validates a C-STORE request before its data set is kept.
func checkStored(cmd *command) error {
	if cmd.sopInstance == "" || !imaging.ValidUID(cmd.sopInstance) {
		return fmt.Errorf("%w: C-STORE-RQ with missing or invalid affected SOP instance UID", ErrProtocol)
	}
	if cmd.sopClass == "" || !imaging.ValidUID(cmd.sopClass) {
		return fmt.Errorf("%w: C-STORE-RQ with missing or invalid affected SOP class UID", ErrProtocol)
	}
	if !cmd.hasData {
		return fmt.Errorf("%w: C-STORE-RQ without a data set", ErrProtocol)
	}
	return nil
}
