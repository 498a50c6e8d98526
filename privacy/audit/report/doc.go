// Package report owns Concord's compliance report: the document a privacy
// officer files with a regulator to show what a federated job did, by
// whom, with which data (counts only), under which privacy guarantees, and
// how each HIPAA and GDPR duty is met. It holds the report's model
// ([Report]), its signature, and four renderers. It imports nothing of the
// audit log, differential privacy, the coordinator or the wire (a test
// enforces it): the coordinator fills a [Report] from them.
//
// # Formats
//
//   - JSON ([WriteJSON]): the signed report itself, for machines and for
//     archiving. Field names are snake_case; "schema" names the version
//     ([Schema]).
//   - CSV ([WriteCSV]): one long table with the columns
//     section,item,field,value, for a spreadsheet: filter on section
//     ("site", "epsilon", "receipt", "hipaa_security_rule", ...), pivot on
//     item and field. Field names are the JSON paths. The last rows,
//     section "signed_report", carry the signed JSON in base64 pieces.
//   - HTML ([WriteHTML]): one self-contained page that works offline (inline
//     CSS, the epsilon chart as an inline PNG, no scripts that run, nothing
//     fetched) and prints on A4. The signed JSON sits in
//     <script type="application/json" id="concord-report">.
//   - PDF ([WritePDF]): the document to file: a title page (consortium,
//     subject, date, audit checkpoint), numbered sections, wrapped tables,
//     the epsilon chart, page numbers. The signed JSON is attached as the
//     file concord-report.json, which PDF readers list under attachments.
//
// Answers that only a hospital can give (its DPO, retention periods,
// transfers outside the EEA) are placeholders made by [ToComplete];
// renderers highlight them and [Placeholders] lists them, so the officer
// knows what to complete before filing.
//
// # Signing and verifying
//
// [Sign] signs the canonical JSON of the report ([Canonical]: every field,
// the signature's algorithm and key id included, its value left empty) with
// Ed25519. [VerifySignature] checks a [Report]; [ExtractAndVerify] checks a
// file in any of the four formats: it finds the embedded JSON, verifies
// the signature, then renders the report again and compares, so a number
// edited on a page is caught even when the embedded data is intact
// ([ErrVisibleMismatch]; a file written by another Concord version gives
// the same error, and the signed data it returns remains trustworthy).
// Rendering is deterministic for this reason: same report, same bytes.
//
// # Where the fields come from
//
// On the coordinator's side:
//
//   - Consortium, Subject, Purpose, LegalBasis: the job specification and
//     the consortium configuration; Subject.ModelVersion from the model
//     registry when the report is about a model.
//   - GeneratedAt: the clock, in UTC. GeneratedBy: the caller's certificate
//     identity ("concord://auditor/dpo-office") from pki.
//   - Sites: the job's participants. DataController and Deidentification
//     from each site's registration (the site agent reports its profile);
//     Records from the counts the site agent reported (never identifiers);
//     CertificateSerial, CertificateExpiry and Role from the pki inventory.
//   - Privacy: the job's settings from privacy/dp (level, mechanism,
//     clipping norm, noise multiplier, sampling rate, accountant and
//     orders, delta). Privacy.Sites from the dp budget ledger (budget,
//     spending before the job, per round epsilon and cumulative, each with
//     its level). Privacy.Receipts verbatim from the audit log's
//     privacy-receipt entries.
//   - SecureAggregation: privacy/he's parameters, and the round state
//     machine's record of who contributed to each round.
//   - Custody: the audit log's submit, approve, publish and export entries
//     (identity and time), including the export of this report.
//   - Lineage: the model registry, from the subject's version back to its
//     first ancestor.
//   - Checkpoint: the privacy/audit checkpoint the entries above were read
//     at (origin, tree size, root hash, the signed note text) and its
//     witness cosignatures.
//
// # The caller's duties
//
//  1. Build a [Report] with Schema set to [Schema] and fill it as above.
//  2. Set HIPAA with [HIPAATable] and GDPR with [GDPRRecordFor] (or write
//     your own); both read the fields above, so fill those first.
//  3. Call [Sign] with the coordinator's report key; it refuses an
//     incomplete report and says what is missing.
//  4. Call [WriteJSON], [WriteCSV], [WriteHTML] or [WritePDF] (or [Write]).
//
// A report file is checked with ExtractAndVerify and the signer's public
// key (concordctl audit verify --file).
package report
