package fhirr4

// Identifier systems Concord assigns. A hospital finds Concord's results by
// them (GET [base]/DiagnosticReport?identifier=urn:concord:result|<ID>).
const (
	// ResultIDSystem names the identifiers derived from Result.ID: the
	// DiagnosticReport's is ID, the Observation's ID/finding, the
	// Provenance's ID/provenance.
	ResultIDSystem = "urn:concord:result"
	// DeviceIDSystem names the model's Device by the registry's device
	// identifier (Model.DeviceUID).
	DeviceIDSystem = "urn:concord:device"
	// ManifestIDSystem and JobIDSystem are further identifiers of the Device:
	// the SHA-256 of the signed manifest and the training job.
	ManifestIDSystem = "urn:concord:manifest-sha256"
	JobIDSystem      = "urn:concord:job"
	// CodeSystem holds the codes of Concord's own Observation components;
	// there is no LOINC code for "probability produced by an AI model".
	CodeSystem = "urn:concord:code"
)

// Codes in CodeSystem.
const (
	CodeFinding           = "ai-finding"
	CodeProbability       = "probability"
	CodeDecisionThreshold = "decision-threshold"
	CodeModelVersion      = "model-version"
	CodeSegInstance       = "seg-instance-uid"
	CodeSegmentVolume     = "segment-volume"
	CodeSegmentArea       = "segment-area"
)

// External code systems, as HL7 names them.
const (
	systemUCUM            = "http://unitsofmeasure.org"
	systemDICOMUID        = "urn:dicom:uid"
	systemLOINC           = "http://loinc.org"
	systemDiagService     = "http://terminology.hl7.org/CodeSystem/v2-0074"
	systemIdentifierType  = "http://terminology.hl7.org/CodeSystem/v2-0203"
	systemObsCategory     = "http://terminology.hl7.org/CodeSystem/observation-category"
	systemObsValue        = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	systemInterpretation  = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	systemParticipantType = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
	systemDataOperation   = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
)

// SecurityAIAST is the meta.security code the HL7 AI Transparency IG uses to
// mark a resource as asserted by artificial intelligence.
const SecurityAIAST = "AIAST"
