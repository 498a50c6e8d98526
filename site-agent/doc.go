// Package siteagent is the process a hospital runs. It dials out to the
// coordinator (hospitals allow outbound connections only, often through a
// proxy), keeps a task stream open, and for each task runs the site's side
// of the job: data → local training → clipping → encryption → upload.
// Patient data never leaves the site; only model updates do, and with
// secure aggregation only ciphertexts. This process is its only reader: an
// ExternalTrainer on the site's GPU node gets the job's pipeline output
// (pixels, labels, masks; no headers or identifiers) as shards from here.
//
// The caller's duties: build a Config (cmd/site-agent converts the YAML
// file), call New, then Run with a context that is cancelled to stop, and
// exit non-zero when Run returns an error. What the agent has computed and
// submitted is recorded in its state database before it is sent, so a
// restarted agent resumes an interrupted upload instead of training again,
// and never submits twice.
//
// # Connection failures
//
// Run reconnects with exponential backoff and full jitter (Config's
// MinBackoff to MaxBackoff) after a transient failure: the coordinator is
// down or unreachable, the connection dropped. It returns an error wrapping
// ErrPermanent, and does not retry, when no retry can succeed:
//
//   - the coordinator's certificate does not chain to the kit's CA, is
//     expired, or does not name the dialled host;
//   - the coordinator rejects this site's certificate during the TLS
//     handshake (another consortium's CA, expired, revoked);
//   - the coordinator answers Unauthenticated or PermissionDenied (a
//     certificate revoked or unknown to the consortium's inventory).
//
// The error says what failed and what to do (reinstall the kit, check
// `coordinator:` in agent.yaml, ask the admin for a new certificate).
//
// # Task failures
//
// Tasks run one at a time. A failed task is retried twice, after 1s and 2s,
// unless its error wraps ErrPermanent: a data problem, a job spec or model
// the site cannot train, a task outside the agent's bounds, a refused
// download. Either way a task that finally fails is reported to the
// coordinator as TaskStatus{state: "failed"} with a reason of at most
// 1 KiB in which the site's folders appear by base name only.
//
// On Cancel{job_id} the agent drops the job's queued tasks and cancels the
// context of its running one: local training stops at its next step,
// nothing more is uploaded for the job, and the task is neither retried
// nor reported. A task of the same job sent later (the job resumed) runs.
//
// # Differential privacy
//
// Config.Privacy is the hospital's record-level policy. Without a Budget
// the agent takes no job whose privacy.level is record, and jobs without
// DP run as usual; with RequireDP it refuses jobs without DP. For a DP job
// the agent, in order:
//
//  1. converts the spec for its own data (jobspec.DPConfig: q, steps per
//     round, the noise given or planned for the whole job) and checks the
//     rest of the job, this round and the rounds after it, against its
//     ledger (dp.Ledger.Check); over budget, the task fails permanently
//     with what is spent, what the job costs and the budget;
//  2. trains only with a RecordDPTrainer (the built-in LocalTrainer, or the
//     ExternalTrainer, whose PyTorch trainer runs the same mechanism), with
//     secret noise and Poisson sampling;
//  3. checks the sampling (dp.CheckSampling) and releases nothing if it
//     fails; sends no metric (the loss and the update's norm are computed
//     on the records and are outside the accounting);
//  4. charges the ledger with the steps that ran, signs a receipt
//     (dp.SignReceipt, with the site certificate's key unless
//     Config.ReceiptKey is set) and records the update, the ledger and
//     the receipt in one transaction, before the first byte is sent: an
//     update is never sent uncharged, and a resumed or repeated upload of
//     a recorded update is not charged again;
//  5. sends the receipt in the upload header and keeps the countersigned
//     receipt the coordinator returns (a list per job in its state).
//
// With a SiteBudget the agent also takes jobs whose privacy.level is site
// (sitedp.go): it checks the rest of the job against its site-level
// ledger, clips its update to the round's clip (the spec's, or the one
// the coordinator adapted and sent with the task, refused unless positive
// and finite), adds its share of the noise and, with adaptive clipping,
// appends its noisy count bit, encrypts with weight 1, sends no metric,
// and charges and signs as in steps 4 and 5, at level site. RequireDP
// refuses site-level jobs too: they do not protect each record.
//
// ReadPrivacy reads the ledgers, receipts and witness alarms offline
// (site-agent privacy). A witness alarm (alarm.go) is an audit checkpoint
// the agent refused to cosign because the coordinator's history does not
// extend what it witnessed; the agent keeps it and sends it to the
// coordinator.
//
// # Validation
//
// A VALIDATE task scores a candidate model on the site's data; it never
// trains and never uploads. The agent downloads the model, refuses it
// unless its SHA-256 is the task's model_sha256, loads the data through
// the same DataSource and job pipeline as training, runs the model on
// every example and computes an evaluation.Assessment (subgroups by the
// coarse header fields in learning.Dataset.Groups, small ones
// suppressed). It signs a validation receipt (evaluation/receipt, with
// the key that signs privacy receipts) naming the model, the data
// manifest (DataManifest) and the pipeline hash, and sends it as a
// ValidationReport: metrics only, never a prediction or a per-example
// value. A report waits in an outbox until a task stream takes it, so a
// report made while the link is down goes out after reconnecting; each
// report sent is in the sent log. A TRAIN task for a job that names this
// site among its validation_sites fails permanently: a validation site
// never trains on the data kept apart to judge the model.
//
// # Data check
//
// A DataSource that implements Checker is checked without decoding any
// image (DICOMFolder: the folder exists and is readable, its sub-folders
// are exactly data.classes, and they hold files, which are counted). The
// check runs at start-up (its answer goes in Hello), before each training
// task (a problem fails the task at once, without retries) and every
// Config.CheckInterval; whenever the answer changes the agent sends Health.
// A problem names the data folder by its base name and the configured
// class names only, never a folder below a class folder (those may carry
// patient names), and says what to do.
//
// # Segmentation data
//
// A site of unet jobs reads a SegFolder (agent.yaml data.layout:
// segmentation): images with a PNG mask beside each or DICOM SEGs that
// reference them. Masks are resampled with the images' pipeline and made
// binary at one half, so training (Dice + cross-entropy), VALIDATE
// receipts (Dice and IoU with bootstrap intervals) and the data manifest
// all see the same 0/1 masks. A SegFolder refuses a classifier's job, and
// a DICOMFolder, having no masks, cannot feed a unet job's training.
//
// # Drift and feedback
//
// After a successful training task the agent records a drift baseline of
// the data it trained on (recordBaseline; a validation task records one
// too): the job, its pipeline, the number of examples, a histogram of
// sampled standardised pixels over the baseline's deciles, and frequency
// tables of coarse header fields (sex, age band, manufacturer, model) when
// the data source supplies them. With Config.Drift.Dir set, the agent reads
// the newest arriving files there (at most 10,000, no labels, broken files
// skipped and counted by reason) at start, every Drift.Interval and after
// a new baseline, runs them through the baseline job's pipeline and sends
// a DriftReport with the population stability index per feature
// (evaluation.PSI) when at least Drift.MinExamples could be read. The
// latest report is sent again at the start of every session. The report
// also counts the clinicians' corrections in Config.Feedback.Dir (folder
// per class) that arrived since the baseline; DICOMFolder.Feedback puts
// the same corrections in the next job's training data. For a job's final
// round the agent also keeps the model it received (the aggregate it
// validated, or the global model of its last training round) with the
// baseline, and compares the distribution of that model's scores on the
// arriving images with that on the baseline data (feature "prediction",
// classifiers only). ReadDrift reads the baseline and last report offline
// (site-agent drift).
//
// # Custom models
//
// A job of arch custom ships a consortium's PyTorch module (custom.go). The
// agent hands it to its external trainer only after checking, before the
// global model is downloaded, that the bytes hash to the job's pin, that
// the hospital approved that hash (codeapproval.go: state_dir/code.db, kept
// apart from agent.db so that `site-agent models approve-code` works while
// the agent runs, with a hash-chained log), and that the trainer runs such
// modules on a GPU, or the site allowed its CPU
// (ExternalTrainer.AllowCPUCustom). Each refusal is permanent and says what
// to do. The built-in trainer and validation never run consortium code.
//
// # Operations
//
// With Config.MetricsListen the agent serves hospital IT's monitoring on
// plain HTTP (metrics.go): /healthz, /readyz (state database, the last
// data check, TLS), /metrics in the Prometheus text format (counts only),
// and POST /backup, a consistent snapshot of the state database served to
// the agent's own host only (backup.go). RestoreState installs a backup
// into a stopped agent's state folder after checking it.
package siteagent
