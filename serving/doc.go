// Package serving runs a published model version inside the hospital:
// studies arrive by DICOMweb STOW-RS or in a watched folder, go through
// exactly the job's imaging pipeline and network, and each study's result
// is delivered to the hospital's FHIR R4 endpoint through a durable queue.
//
// Design choices, in the order a study meets them:
//
//   - Which model. Versions reach the site as folders written by
//     `concordctl models download VERSION --out MODELS/VERSION`. The
//     hospital approves one (Approve records the SHA-256 of its signed
//     manifest, who and when); LoadApproved serves the latest approved
//     version and fails closed: a folder that does not verify against the
//     consortium's key, a version that is not published with its gates
//     passed, a manifest other than the one approved, or a pipeline hash
//     this agent computes differently from training's stops serving with
//     the reason. Segmentation versions are refused (no DICOM SEG writer).
//   - Same preprocessing. The pipeline and network are rebuilt from the job
//     spec in the manifest by the same conversions training uses
//     (jobspec.PipelineConfig, jobspec.ModelSpec), and the pipeline's hash
//     must equal the manifest's.
//   - One result per study. Instances are grouped by Study Instance UID;
//     the study's probabilities are the mean over its instances; a binary
//     model decides at the threshold its validation receipts were scored
//     at. The result id is derived from the model's device UID and the
//     study UID, so a study sent twice gives one set of FHIR resources.
//   - Persist before answering. A study's audit record, its feedback
//     record and its FHIR bundle are written in one bbolt transaction
//     (serve.db, apart from the agent's own database so that `run` and
//     `serve` can run side by side) before STOW-RS responds or a watched
//     file moves to processed/.
//   - Delivery. One goroutine sends the queue in order; a retryable
//     failure keeps the head and backs off (doubling, capped); a permanent
//     refusal parks the item (kept with its reason, counted, logged) so it
//     never blocks later results. An item leaves the queue only after the
//     endpoint confirmed it; after a crash it is sent again and the
//     bundle's conditional creates make that a no-op: exactly once.
//   - Audit. Every inference and feedback is a record in a hash-chained
//     bucket: model version and device UID, SHA-256 of the study UID, time.
//     No pixel and no identifier.
//   - Feedback. POST /feedback copies the study's kept instances into the
//     site's feedback folder under the right class; the next job trains on
//     them and drift reports count them. The kept instances are
//     identifiable and never leave the site.
package serving
