package dimse

import (
	"encoding/binary"
	"fmt"
)

// Command set elements (PS3.7 annex E) and the identifier keys we use.
const (
	tagGroupLength         = 0x00000000
	tagAffectedSOPClass    = 0x00000002
	tagRequestedSOPClass   = 0x00000003
	tagCommandField        = 0x00000100
	tagMessageID           = 0x00000110
	tagRespondingTo        = 0x00000120
	tagMoveDestination     = 0x00000600
	tagPriority            = 0x00000700
	tagDataSetType         = 0x00000800
	tagStatus              = 0x00000900
	tagErrorComment        = 0x00000902
	tagAffectedSOPInstance = 0x00001000
	tagRemaining           = 0x00001020
	tagCompleted           = 0x00001021
	tagFailed              = 0x00001022
	tagWarning             = 0x00001023

	tagSOPClassUID     = 0x00080016
	tagSOPInstanceUID  = 0x00080018
	tagStudyDate       = 0x00080020
	tagQueryLevel      = 0x00080052
	tagModality        = 0x00080060
	tagModalitiesStudy = 0x00080061
	tagSeriesDesc      = 0x0008103E
	tagBodyPart        = 0x00180015
	tagStudyUID        = 0x0020000D
	tagSeriesUID       = 0x0020000E
	tagSeriesInstances = 0x00201209
)

// Command fields.
const (
	cStoreRQ  = 0x0001
	cStoreRSP = 0x8001
	cGetRQ    = 0x0010
	cGetRSP   = 0x8010
	cFindRQ   = 0x0020
	cFindRSP  = 0x8020
	cMoveRQ   = 0x0021
	cMoveRSP  = 0x8021
	cEchoRQ   = 0x0030
	cEchoRSP  = 0x8030
	cCancelRQ = 0x0FFF

	noDataSet      = 0x0101
	dataSetPresent = 0x0000
)

// command is a decoded command set.
type command struct {
	field       uint16
	messageID   uint16 // message ID of a request, or the one a response answers
	sopClass    string
	sopInstance string
	status      uint16
	hasData     bool
	comment     string
	remaining   int // sub-operation counts of C-GET/C-MOVE responses; -1 absent
	completed   int
	failed      int
	warning     int
}

func uidValue(s string) []byte { return []byte(s) }

// encodeCommand writes a command set with its group length.
func encodeCommand(els []element) []byte {
	body := encodeElements(els)
	var gl [12]byte
	binary.LittleEndian.PutUint32(gl[4:], 4)
	binary.LittleEndian.PutUint32(gl[8:], uint32(len(body)))
	return append(gl[:], body...)
}

func requestElements(field, msgID uint16, sopClass string, withData bool) []element {
	dst := uint16(noDataSet)
	if withData {
		dst = dataSetPresent
	}
	els := []element{
		{tagCommandField, u16Value(field)},
		{tagMessageID, u16Value(msgID)},
		{tagDataSetType, u16Value(dst)},
	}
	if sopClass != "" {
		els = append(els, element{tagAffectedSOPClass, uidValue(sopClass)})
	}
	if field != cEchoRQ && field != cCancelRQ {
		els = append(els, element{tagPriority, u16Value(0)})
	}
	return els
}

func decodeCommand(b []byte) (*command, error) {
	els, err := decodeElements(b)
	if err != nil {
		return nil, fmt.Errorf("command set: %w", err)
	}
	// DCMTK-based peers (Orthanc among them) append the failed SOP
	// instance list of a failed C-GET to the command set itself; what
	// lies outside group 0000 is not part of the command and is dropped.
	for tag := range els {
		if tag>>16 != 0 {
			delete(els, tag)
		}
	}
	field, ok := els.u16(tagCommandField)
	if !ok {
		return nil, fmt.Errorf("%w: command set has no command field", ErrProtocol)
	}
	c := &command{field: field, remaining: -1, completed: -1, failed: -1, warning: -1}
	if field&0x8000 != 0 {
		c.messageID, ok = els.u16(tagRespondingTo)
	} else {
		c.messageID, ok = els.u16(tagMessageID)
	}
	if !ok && field != cCancelRQ {
		return nil, fmt.Errorf("%w: command 0x%04X has no message ID", ErrProtocol, field)
	}
	dst, ok := els.u16(tagDataSetType)
	if !ok {
		return nil, fmt.Errorf("%w: command 0x%04X has no data set type", ErrProtocol, field)
	}
	c.hasData = dst != noDataSet
	c.sopClass = els.str(tagAffectedSOPClass)
	c.sopInstance = els.str(tagAffectedSOPInstance)
	c.comment = cut(els.str(tagErrorComment))
	if field&0x8000 != 0 {
		if c.status, ok = els.u16(tagStatus); !ok {
			return nil, fmt.Errorf("%w: response 0x%04X has no status", ErrProtocol, field)
		}
	}
	for _, f := range []struct {
		tag uint32
		dst *int
	}{{tagRemaining, &c.remaining}, {tagCompleted, &c.completed}, {tagFailed, &c.failed}, {tagWarning, &c.warning}} {
		if v, ok := els.u16(f.tag); ok {
			*f.dst = int(v)
		}
	}
	return c, nil
}

// cut keeps a peer's free text short and printable before it is quoted
// in an error.
func cut(s string) string {
	b := []byte(s)
	if len(b) > 64 {
		b = append(b[:64], "..."...)
	}
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			b[i] = '?'
		}
	}
	return string(b)
}

// Status classes (PS3.7 annex C).
func isPending(s uint16) bool { return s == 0xFF00 || s == 0xFF01 }
func isSuccess(s uint16) bool { return s == 0x0000 }
func isWarning(s uint16) bool {
	return s == 0x0001 || s&0xF000 == 0xB000 || s == 0x0107 || s == 0x0116
}
func isCancel(s uint16) bool { return s == 0xFE00 }

// statusText words a DIMSE status for an error message.
func statusText(s uint16) string {
	switch {
	case s == 0x0000:
		return "success"
	case isPending(s):
		return "pending"
	case s == 0xFE00:
		return "cancelled"
	case s == 0xB000:
		return "warning: some sub-operations failed"
	case s&0xF000 == 0xB000:
		return "warning"
	case s == 0x0122:
		return "SOP class not supported"
	case s == 0x0124:
		return "not authorised"
	case s == 0x0211:
		return "unrecognised operation"
	case s == 0x0212:
		return "mistyped argument"
	case s&0xFF00 == 0xA700:
		return "refused: out of resources"
	case s == 0xA801:
		return "refused: move destination unknown (the PACS does not know our AE title, host and port)"
	case s&0xFF00 == 0xA900:
		return "identifier does not match SOP class"
	case s&0xF000 == 0xC000:
		return "unable to process"
	}
	return "failure"
}

// statusError is a DIMSE failure status the peer returned.
type statusError struct {
	op      string
	status  uint16
	comment string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s failed with status 0x%04X (%s)", e.op, e.status, statusText(e.status))
	if e.comment != "" {
		msg += ": " + e.comment
	}
	return msg
}
