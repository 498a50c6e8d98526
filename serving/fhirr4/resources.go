package fhirr4

import (
	"fmt"
	"sort"
	"strings"

	c "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dt "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	devpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/device_go_proto"
	drpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/diagnostic_report_go_proto"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	patpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	provpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/provenance_go_proto"
)

// refs are the fullUrls of a Bundle's entries, by role.
type refs struct{ patient, device, finding, report, provenance string }

func newRefs(id string) refs {
	return refs{
		patient:    entryUUID(id, "patient"),
		device:     entryUUID(id, "device"),
		finding:    entryUUID(id, "finding"),
		report:     entryUUID(id, "report"),
		provenance: entryUUID(id, "provenance"),
	}
}

// aiAsserted is the meta every AI-produced resource carries.
func aiAsserted() *dt.Meta {
	return &dt.Meta{Security: []*dt.Coding{
		coding(systemObsValue, SecurityAIAST, "Artificial Intelligence asserted"),
	}}
}

func modelLabel(m Model) string { return m.Name + " " + m.Version }

// patient carries only the hospital's identifier: when the hospital's server
// already knows the patient, conditional create links to that record; when
// it does not, the record it creates holds nothing but the identifier.
func patient(r *Result) *patpb.Patient {
	return &patpb.Patient{Identifier: []*dt.Identifier{identifier(r.PatientIDSystem, r.PatientID)}}
}

func device(r *Result) *devpb.Device {
	m := r.Model
	d := &devpb.Device{
		Identifier: []*dt.Identifier{identifier(DeviceIDSystem, m.DeviceUID)},
		Status:     &devpb.Device_StatusCode{Value: c.FHIRDeviceStatusCode_ACTIVE},
		DeviceName: []*devpb.Device_DeviceName{{
			Name: str(m.Name),
			Type: &devpb.Device_DeviceName_TypeCode{Value: c.DeviceNameTypeCode_MODEL_NAME},
		}},
		ModelNumber: str(m.Version),
		Type:        concept("AI model trained by federated learning (Concord), " + r.Task),
		Version: []*devpb.Device_Version{{
			Type:  concept("registry device identifier"),
			Value: str(m.DeviceUID),
		}},
	}
	if m.ManifestSHA256 != "" {
		d.Identifier = append(d.Identifier, identifier(ManifestIDSystem, m.ManifestSHA256))
	}
	if m.JobID != "" {
		d.Identifier = append(d.Identifier, identifier(JobIDSystem, m.JobID))
	}
	if m.Publisher != "" {
		d.Manufacturer = str(m.Publisher)
	}
	return d
}

func component(codeValue, text string) *obspb.Observation_Component {
	return &obspb.Observation_Component{Code: concept(text, coding(CodeSystem, codeValue, ""))}
}

func quantityComponent(codeValue, text string, q *dt.Quantity) *obspb.Observation_Component {
	cm := component(codeValue, text)
	cm.Value = &obspb.Observation_Component_ValueX{Choice: &obspb.Observation_Component_ValueX_Quantity{Quantity: q}}
	return cm
}

func stringComponent(codeValue, text, v string) *obspb.Observation_Component {
	cm := component(codeValue, text)
	cm.Value = &obspb.Observation_Component_ValueX{Choice: &obspb.Observation_Component_ValueX_StringValue{StringValue: str(v)}}
	return cm
}

// finding is the one Observation of a result: its value is the decision, its
// components the per-class probabilities, the decision threshold, the model
// version and, for segmentation, the SEG instance and segment volumes.
func finding(r *Result, rf refs) *obspb.Observation {
	o := &obspb.Observation{
		Meta:       aiAsserted(),
		Identifier: []*dt.Identifier{identifier(ResultIDSystem, r.ID+"/finding")},
		Status:     &obspb.Observation_StatusCode{Value: c.ObservationStatusCode_FINAL},
		Category:   []*dt.CodeableConcept{concept("", coding(systemObsCategory, "imaging", "Imaging"))},
		Code:       concept("AI finding: "+r.Model.Name, coding(CodeSystem, CodeFinding, "")),
		Subject:    localRef(rf.patient, ""),
		Effective:  &obspb.Observation_EffectiveX{Choice: &obspb.Observation_EffectiveX_DateTime{DateTime: dateTime(r.Issued)}},
		Issued:     instant(r.Issued),
		Value: &obspb.Observation_ValueX{Choice: &obspb.Observation_ValueX_CodeableConcept{
			CodeableConcept: concept(r.Decision),
		}},
		Device:      localRef(rf.device, modelLabel(r.Model)),
		DerivedFrom: []*dt.Reference{dicomRef("ImagingStudy", r.StudyInstanceUID, "")},
		Note: []*dt.Annotation{{Text: &dt.Markdown{Value: "Produced by an AI model (" + modelLabel(r.Model) +
			"); for review by a clinician, not a diagnosis."}}},
	}
	if len(r.Classes) > 0 {
		pos := "NEG"
		display := "Negative"
		if r.Decision == r.Classes[r.PositiveClass] {
			pos, display = "POS", "Positive"
		}
		o.Interpretation = []*dt.CodeableConcept{concept("", coding(systemInterpretation, pos, display))}
	}
	for i, cl := range r.Classes {
		if i < len(r.Probabilities) {
			o.Component = append(o.Component, quantityComponent(CodeProbability, "Probability of "+cl,
				quantity(r.Probabilities[i], "probability", "1")))
		}
	}
	o.Component = append(o.Component,
		quantityComponent(CodeDecisionThreshold, "Decision threshold (validated for this model version)",
			quantity(r.Threshold, "probability", "1")),
		stringComponent(CodeModelVersion, "Model version", modelLabel(r.Model)),
	)
	if r.Task == TaskSegmentation {
		o.Component = append(o.Component,
			stringComponent(CodeSegInstance, "DICOM SEG SOP Instance UID", "urn:oid:"+r.SegInstanceUID))
		for _, n := range sortedKeys(r.SegmentVolumesML) {
			o.Component = append(o.Component, quantityComponent(CodeSegmentVolume, "Volume of "+n,
				quantity(r.SegmentVolumesML[n], "mL", "mL")))
		}
		for _, n := range sortedKeys(r.SegmentAreasMM2) {
			o.Component = append(o.Component, quantityComponent(CodeSegmentArea, "Area of "+n,
				quantity(r.SegmentAreasMM2[n], "mm2", "mm2")))
		}
	}
	return o
}

// sortedKeys orders a map's keys: map order must not change the Bundle's
// bytes.
func sortedKeys(m map[string]float64) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func report(r *Result, rf refs) *drpb.DiagnosticReport {
	d := &drpb.DiagnosticReport{
		Meta:       aiAsserted(),
		Identifier: []*dt.Identifier{identifier(ResultIDSystem, r.ID)},
		Status:     &drpb.DiagnosticReport_StatusCode{Value: c.DiagnosticReportStatusCode_FINAL},
		Category:   []*dt.CodeableConcept{concept("", coding(systemDiagService, "RAD", "Radiology"))},
		Code:       concept("AI result: "+r.Model.Name, coding(systemLOINC, "18748-4", "Diagnostic imaging study")),
		Subject:    localRef(rf.patient, ""),
		Effective: &drpb.DiagnosticReport_EffectiveX{Choice: &drpb.DiagnosticReport_EffectiveX_DateTime{
			DateTime: dateTime(r.Issued),
		}},
		Issued:       instant(r.Issued),
		Result:       []*dt.Reference{localRef(rf.finding, "")},
		ImagingStudy: []*dt.Reference{dicomRef("ImagingStudy", r.StudyInstanceUID, "")},
		Conclusion:   str(conclusion(r)),
	}
	if r.AccessionNumber != "" {
		d.Identifier = append(d.Identifier, &dt.Identifier{
			Type:  concept("", coding(systemIdentifierType, "ACSN", "Accession ID")),
			Value: str(r.AccessionNumber),
		})
	}
	return d
}

// conclusion is the sentence a clinician reads first.
func conclusion(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "AI %s (%s): %s", r.Task, modelLabel(r.Model), r.Decision)
	if r.Task == TaskClassification {
		fmt.Fprintf(&b, ", probability of %s %.3f at decision threshold %.3f",
			r.Classes[r.PositiveClass], r.Probabilities[r.PositiveClass], r.Threshold)
	}
	for _, n := range sortedKeys(r.SegmentVolumesML) {
		fmt.Fprintf(&b, "; %s volume %.1f mL", n, r.SegmentVolumesML[n])
	}
	for _, n := range sortedKeys(r.SegmentAreasMM2) {
		fmt.Fprintf(&b, "; %s area %.0f mm²", n, r.SegmentAreasMM2[n])
	}
	if r.Task == TaskSegmentation {
		fmt.Fprintf(&b, " (DICOM SEG %s)", r.SegInstanceUID)
	}
	b.WriteString(". For review by a clinician; not a diagnosis.")
	return b.String()
}

// provenance follows the AI Transparency IG: the targets are the AI-asserted
// resources, the agent is the model's Device (R4's Observation.performer
// cannot name a Device), and the source entity is the imaging study.
func provenance(r *Result, rf refs) *provpb.Provenance {
	p := &provpb.Provenance{
		// R4's Provenance has no identifier: a meta.tag stands in for it, and
		// conditional create searches _tag.
		Meta:     &dt.Meta{Tag: []*dt.Coding{coding(ResultIDSystem, r.ID+"/provenance", "")}},
		Target:   []*dt.Reference{localRef(rf.report, ""), localRef(rf.finding, "")},
		Occurred: &provpb.Provenance_OccurredX{Choice: &provpb.Provenance_OccurredX_DateTime{DateTime: dateTime(r.Issued)}},
		Recorded: instant(r.Issued),
		Activity: concept("", coding(systemDataOperation, "CREATE", "create")),
		Agent: []*provpb.Provenance_Agent{{
			Type: concept("", coding(systemParticipantType, "author", "Author")),
			Who:  localRef(rf.device, modelLabel(r.Model)),
		}},
		Entity: []*provpb.Provenance_Entity{{
			Role: &provpb.Provenance_Entity_RoleCode{Value: c.ProvenanceEntityRoleCode_SOURCE},
			What: dicomRef("ImagingStudy", r.StudyInstanceUID, ""),
		}},
	}
	if r.SeriesInstanceUID != "" {
		p.Entity = append(p.Entity, &provpb.Provenance_Entity{
			Role: &provpb.Provenance_Entity_RoleCode{Value: c.ProvenanceEntityRoleCode_SOURCE},
			What: dicomRef("", r.SeriesInstanceUID, "source series"),
		})
	}
	return p
}
