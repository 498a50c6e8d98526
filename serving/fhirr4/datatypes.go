package fhirr4

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"time"

	dt "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// Small constructors for the google/fhir datatypes, so the resource builders
// read like the resources they build.

func str(v string) *dt.String { return &dt.String{Value: v} }
func uri(v string) *dt.Uri    { return &dt.Uri{Value: v} }
func code(v string) *dt.Code  { return &dt.Code{Value: v} }

// decimal writes the shortest form that reads back as the same float64.
func decimal(v float64) *dt.Decimal {
	return &dt.Decimal{Value: strconv.FormatFloat(v, 'f', -1, 64)}
}

func coding(system, c, display string) *dt.Coding {
	cd := &dt.Coding{System: uri(system), Code: code(c)}
	if display != "" {
		cd.Display = str(display)
	}
	return cd
}

func concept(text string, codings ...*dt.Coding) *dt.CodeableConcept {
	cc := &dt.CodeableConcept{Coding: codings}
	if text != "" {
		cc.Text = str(text)
	}
	return cc
}

func identifier(system, value string) *dt.Identifier {
	return &dt.Identifier{System: uri(system), Value: str(value)}
}

// instant is UTC at millisecond precision: what every FHIR server stores.
func instant(t time.Time) *dt.Instant {
	return &dt.Instant{
		ValueUs:   t.UTC().Truncate(time.Millisecond).UnixMicro(),
		Timezone:  "UTC",
		Precision: dt.Instant_MILLISECOND,
	}
}

func dateTime(t time.Time) *dt.DateTime {
	return &dt.DateTime{
		ValueUs:   t.UTC().Truncate(time.Millisecond).UnixMicro(),
		Timezone:  "UTC",
		Precision: dt.DateTime_MILLISECOND,
	}
}

// quantity is a UCUM quantity.
func quantity(v float64, unit, ucum string) *dt.Quantity {
	return &dt.Quantity{Value: decimal(v), Unit: str(unit), System: uri(systemUCUM), Code: code(ucum)}
}

// localRef points at another entry of the same Bundle by its fullUrl; the
// server rewrites it to the id the entry gets (or already had).
func localRef(fullURL, display string) *dt.Reference {
	r := &dt.Reference{Reference: &dt.Reference_Uri{Uri: str(fullURL)}}
	if display != "" {
		r.Display = str(display)
	}
	return r
}

// dicomRef is a logical reference by DICOM UID: the resource it names need
// not exist on the server (R4 identifies an ImagingStudy by urn:dicom:uid).
func dicomRef(resourceType, uid, display string) *dt.Reference {
	r := &dt.Reference{Identifier: identifier(systemDICOMUID, "urn:oid:"+uid)}
	if resourceType != "" {
		r.Type = uri(resourceType)
	}
	if display != "" {
		r.Display = str(display)
	}
	return r
}

// entryUUID derives the urn:uuid fullUrl of one entry from the result ID and
// the entry's role, so the same Result always yields the same bytes. The
// bits are laid out as an RFC 9562 version-8 (custom) UUID.
func entryUUID(resultID, role string) string {
	h := sha256.Sum256([]byte("concord/fhirr4\x00" + resultID + "\x00" + role))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
