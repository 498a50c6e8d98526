package fhirr4

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	c "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	bcr "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// Bundle builds the FHIR R4 transaction Bundle (JSON) for r: the Patient by
// the hospital's identifier, a Device for the model, the finding Observation,
// the DiagnosticReport and a Provenance naming the Device as author. Every
// entry is a conditional create (ifNoneExist on an identifier derived from
// r.ID, or on the Patient's and Device's own identifiers), so posting the
// same Bundle again creates nothing new. The same Result always gives the
// same bytes.
func Bundle(r Result) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	rf := newRefs(r.ID)
	type entry struct {
		fullURL, resourceType, ifNoneExist string
		res                                *bcr.ContainedResource
	}
	entries := []entry{
		{rf.patient, "Patient", byIdentifier(r.PatientIDSystem, r.PatientID),
			&bcr.ContainedResource{OneofResource: &bcr.ContainedResource_Patient{Patient: patient(&r)}}},
		{rf.device, "Device", byIdentifier(DeviceIDSystem, r.Model.DeviceUID),
			&bcr.ContainedResource{OneofResource: &bcr.ContainedResource_Device{Device: device(&r)}}},
		{rf.finding, "Observation", byIdentifier(ResultIDSystem, r.ID+"/finding"),
			&bcr.ContainedResource{OneofResource: &bcr.ContainedResource_Observation{Observation: finding(&r, rf)}}},
		{rf.report, "DiagnosticReport", byIdentifier(ResultIDSystem, r.ID),
			&bcr.ContainedResource{OneofResource: &bcr.ContainedResource_DiagnosticReport{DiagnosticReport: report(&r, rf)}}},
		{rf.provenance, "Provenance", "_tag=" + url.QueryEscape(ResultIDSystem+"|"+r.ID+"/provenance"), // ID needs no escaping
			&bcr.ContainedResource{OneofResource: &bcr.ContainedResource_Provenance{Provenance: provenance(&r, rf)}}},
	}
	b := &bcr.Bundle{Type: &bcr.Bundle_TypeCode{Value: c.BundleTypeCode_TRANSACTION}}
	for _, e := range entries {
		b.Entry = append(b.Entry, &bcr.Bundle_Entry{
			FullUrl:  uri(e.fullURL),
			Resource: e.res,
			Request: &bcr.Bundle_Entry_Request{
				Method:      &bcr.Bundle_Entry_Request_MethodCode{Value: c.HTTPVerbCode_POST},
				Url:         uri(e.resourceType),
				IfNoneExist: str(e.ifNoneExist),
			},
		})
	}
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("fhir marshaller: %w", err)
	}
	out, err := m.MarshalResource(b)
	if err != nil {
		return nil, fmt.Errorf("marshal bundle: %w", err)
	}
	return out, nil
}

// byIdentifier is the ifNoneExist query for a token search on identifier.
func byIdentifier(system, value string) string {
	return "identifier=" + url.QueryEscape(escapeSearch(system)+"|"+escapeSearch(value))
}

// escapeSearch escapes the characters FHIR search gives a meaning to (R4
// search 3.1.1.5.7): a hospital's patient identifier may hold a comma.
var escapeSearch = strings.NewReplacer(`\`, `\\`, `,`, `\,`, `$`, `\$`, `|`, `\|`).Replace
