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
//     the reason.
//   - Same preprocessing. The pipeline and network are rebuilt from the job
//     spec in the manifest by the same conversions training uses
//     (jobspec.PipelineConfig, jobspec.ModelSpec), and the pipeline's hash
//     must equal the manifest's.
//   - One result per study. Instances are grouped by Study Instance UID;
//     the study's probabilities are the mean over its instances; a binary
//     model decides at the threshold its validation receipts were scored
//     at. The result id is derived from the model's device UID and the
//     study UID, so a study sent twice gives one set of FHIR resources.
//   - Segmentation (a unet version). One DICOM SEG per study, covering its
//     largest series (other series, multi-frame images and images of
//     another size than the series' first are reported failed, 0x0110):
//     each image goes through the same pipeline, the foreground
//     probabilities are thresholded at the validated threshold, and each
//     mask is resampled by nearest neighbour to its image's rows × columns
//     (the pipeline stretches the whole image, so this is its inverse).
//     The SEG's series and instance UIDs derive from the result id, so a
//     study sent twice rewrites the same SEG instead of making a second
//     one the FHIR result does not name. A study sent in parts is not
//     merged: each part rewrites the SEG file with its own images while the
//     FHIR result (created once) stays the first part's, so a study is to
//     be sent whole. The SEG is written (fsynced) to
//     STATE/serve/seg/<result>.dcm before the result is committed and is
//     kept after the study's images are pruned: it is the result. The
//     FHIR Observation names its SOP Instance UID and the segment's size:
//     a volume in mL when the images give pixel spacing and a slice
//     spacing or thickness, an area in mm² when only pixel spacing, none
//     otherwise. The segment is labelled Config.SegmentLabel (default the
//     model's name) and coded as SNOMED CT "Tissue": a job spec names no
//     anatomy. With Config.SEGStore the SEG is also stored in the PACS by
//     STOW-RS through its own queue (committed with the result, same
//     backoff and parking as FHIR delivery, confirmed only by a response
//     dataset that lists the SEG); storing it twice is the same instance.
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
//     them and drift reports count them. For a segmentation result,
//     "agree" copies the study and its SEG side by side into the feedback
//     folder's segmentation/ (the layout a segmentation data folder reads),
//     "disagree" is recorded with no example, and a corrected mask is not
//     taken. The kept instances are identifiable and never leave the site.
//   - Parked results. Store.Resend (`site-agent models resend`) moves
//     parked FHIR results and SEGs back to the end of their queues once
//     the reason the endpoint gave is fixed.
package serving
