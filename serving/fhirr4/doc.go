// Package fhirr4 turns one study's AI result into FHIR R4 resources and
// delivers them to the hospital's FHIR server. Resources are built and
// serialised with github.com/google/fhir/go (the R4 protos and jsonformat),
// never with hand-written structs.
//
// # What a result becomes
//
// Bundle makes one transaction Bundle of five entries:
//
//   - Patient, carrying only the hospital's own identifier (Result.PatientID
//     in Result.PatientIDSystem). It stays inside the hospital: the Bundle
//     goes to the hospital's server and nowhere else.
//   - Device, the model version: deviceName = model name, modelNumber = model
//     version, version[0] = the registry's device identifier (Model.DeviceUID),
//     identifiers for the device identifier, the signed manifest's SHA-256
//     and the training job, manufacturer = publisher.
//   - Observation, the finding: value = the decision, interpretation POS/NEG
//     against the positive class, components for the probability of each
//     class, the validated decision threshold, the model version and, for
//     segmentation, the DICOM SEG instance UID (urn:oid:) and each segment's
//     volume (mL) or, for images without a slice thickness, area (mm²).
//     Observation.device names the model's Device.
//   - DiagnosticReport (LOINC 18748-4, category RAD) with the Observation as
//     its result, a conclusion a clinician can read, and the ImagingStudy as
//     a logical reference by Study Instance UID (urn:dicom:uid, urn:oid:…);
//     the accession number, when known, is a second identifier of type ACSN.
//   - Provenance with the report and the Observation as targets.
//
// # AI labelling (HL7 AI Transparency on FHIR)
//
// The DiagnosticReport and the Observation carry the security label AIAST
// (v3-ObservationValue, "Artificial Intelligence asserted") in meta.security,
// the IG's tag for resources asserted by AI. The model itself is named the
// IG's way: R4's Observation.performer and DiagnosticReport.performer cannot
// reference a Device, so the Device is the Provenance's agent (type author)
// and the Provenance's source entity is the imaging study. Observation.device,
// which R4 allows to be a Device, names it too. The resources do not claim
// the IG's profiles in meta.profile: only the base R4 definitions are
// validated here.
//
// # Idempotent delivery
//
// Every entry is a conditional create: ifNoneExist on an identifier derived
// from Result.ID (the report's is ID, the Observation's ID/finding), on the
// Patient's and Device's own identifiers, and for the Provenance, which has
// no identifier in R4, on a meta.tag (system ResultIDSystem, code
// ID/provenance) searched with _tag. Entry fullUrls are urn:uuids derived
// from ID, so the same Result gives byte-identical Bundles. Posting a Bundle
// again after any failure, even one that happened after the server committed,
// creates nothing new; a second result for the same patient or model reuses
// that Patient and Device. Identifier values are escaped in ifNoneExist as R4
// search requires (\, \| \$ \\). Medplum's in-memory router, the tests'
// server, does not unescape them: there, a patient identifier holding one of
// those characters is created again on a second post.
//
// # Validation
//
// Bundle refuses a Result that is incomplete or out of range (ErrInvalidResult,
// naming the field, never a patient identifier's value). Codes with required
// bindings (statuses, Bundle type, HTTP verb, entity role, device name type)
// are google/fhir enums, so an invalid one cannot be built; the tests validate
// every resource against the R4 StructureDefinitions with Medplum's validator,
// which checks structure and cardinality but not those bindings.
//
// # Delivery errors
//
// Client.Deliver posts one Bundle and returns a *DeliveryError on failure:
// retryable for network errors, 5xx, 408 and 429; permanent for other 4xx,
// with the server's OperationOutcome text as Reason, and for a 2xx that is not
// a transaction-response (a proxy's login page is not a delivery). Retrying,
// backoff and queueing belong to the caller. Response bodies are read up to
// a bound.
//
// Tests run against real peers (internal/testfhir): Medplum's R4 validator
// and Medplum's FHIR router served over HTTP.
package fhirr4
