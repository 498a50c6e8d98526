package report

import "time"

// Schema names this version of the report format. It is inside the signed
// data, so a reader knows which fields to expect before trusting any.
const Schema = "concord.compliance-report/v1"

// Report is everything a compliance report states. The coordinator fills
// it (see the package documentation for where each field comes from),
// calls [Sign], then one of the Write functions.
type Report struct {
	Schema     string  `json:"schema"`
	Consortium string  `json:"consortium"`
	Subject    Subject `json:"subject"`
	// GeneratedAt is when the report was built; GeneratedBy is the
	// certificate identity of whoever asked for it.
	GeneratedAt time.Time `json:"generated_at"`
	GeneratedBy string    `json:"generated_by"`
	// Purpose and LegalBasis of the processing, in words a regulator reads,
	// e.g. "GDPR Art. 6(1)(e) and 9(2)(j): scientific research in the
	// public interest".
	Purpose    string `json:"purpose"`
	LegalBasis string `json:"legal_basis"`

	Sites             []Site            `json:"sites"`
	Privacy           DP                `json:"differential_privacy"`
	SecureAggregation SecureAggregation `json:"secure_aggregation"`
	// Custody lists who submitted, approved, published and exported, in
	// time order.
	Custody []Event        `json:"custody"`
	Lineage []ModelVersion `json:"model_lineage"`
	// HIPAA and GDPR are usually filled by [HIPAATable] and [GDPRRecordFor].
	HIPAA      []HIPAAControl `json:"hipaa_security_rule"`
	GDPR       GDPRRecord     `json:"gdpr_article_30"`
	Checkpoint Checkpoint     `json:"audit_checkpoint"`

	// Signature covers every other field; see [Sign].
	Signature *Signature `json:"signature,omitempty"`
}

// Subject is what the report is about: a job, or a model version together
// with the job that trained it.
type Subject struct {
	JobID        string `json:"job_id"`
	JobName      string `json:"job_name,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
}

// Site is one hospital taking part.
type Site struct {
	Name string `json:"name"`
	// DataController is the legal entity responsible for the site's data.
	DataController string `json:"data_controller"`
	// Role is the role in the site's certificate, e.g. "site".
	Role    string       `json:"role"`
	Records RecordCounts `json:"records"`
	// Deidentification is the profile applied at the site before
	// training, e.g. "DICOM PS3.15 Annex E Basic Application
	// Confidentiality Profile".
	Deidentification  string    `json:"deidentification_profile"`
	CertificateSerial string    `json:"certificate_serial"`
	CertificateExpiry time.Time `json:"certificate_expiry"`
}

// RecordCounts are counts only: a report never carries an identifier.
type RecordCounts struct {
	Patients   int `json:"patients"`
	Studies    int `json:"studies"`
	Images     int `json:"images"`
	Training   int `json:"training_images"`
	Validation int `json:"validation_images"`
	// Excluded are images the site could not read or rejected.
	Excluded int `json:"excluded_images"`
}

// Level is the unit a differential-privacy guarantee protects.
type Level string

const (
	// LevelRecord protects any one record (image) of a site.
	LevelRecord Level = "record"
	// LevelSite protects a whole site's participation.
	LevelSite Level = "site"
)

// DP is the differential-privacy section.
type DP struct {
	// Enabled false means the job ran without differential privacy; the
	// report says so plainly.
	Enabled bool  `json:"enabled"`
	Level   Level `json:"level"`
	// Mechanism, e.g. "Gaussian mechanism on clipped per-example gradients (DP-SGD)".
	Mechanism       string  `json:"mechanism"`
	ClippingNorm    float64 `json:"clipping_norm"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	SamplingRate    float64 `json:"sampling_rate"`
	// Accountant, e.g. "Rényi DP (moments accountant)", and the Rényi
	// orders it evaluates.
	Accountant string    `json:"accountant"`
	Orders     []float64 `json:"orders"`
	Delta      float64   `json:"delta"`
	// Sites holds each site's spending against its budget.
	Sites    []SiteBudget `json:"sites"`
	Receipts []Receipt    `json:"receipts"`
}

// SiteBudget is one site's epsilon, round by round, against its budget.
type SiteBudget struct {
	Site string `json:"site"`
	// Level is the unit this site's epsilon is for.
	Level  Level   `json:"level"`
	Budget float64 `json:"epsilon_budget"`
	// SpentBefore is the epsilon the site had spent on earlier jobs.
	SpentBefore float64      `json:"spent_before"`
	Rounds      []RoundSpend `json:"rounds"`
}

// RoundSpend is the epsilon of one round and the site's total after it
// (including SpentBefore).
type RoundSpend struct {
	Round      int     `json:"round"`
	Epsilon    float64 `json:"epsilon"`
	Cumulative float64 `json:"cumulative_epsilon"`
}

// Receipt is a privacy receipt a site signed when it sent an update: the
// plain fields and the signature as the site produced them.
type Receipt struct {
	Site       string    `json:"site"`
	Round      int       `json:"round"`
	Level      Level     `json:"level"`
	Epsilon    float64   `json:"epsilon"`
	Cumulative float64   `json:"cumulative_epsilon"`
	Delta      float64   `json:"delta"`
	UpdateHash string    `json:"update_sha256"`
	IssuedAt   time.Time `json:"issued_at"`
	KeyID      string    `json:"key_id"`
	Signature  string    `json:"signature"`
}

// SecureAggregation is how updates were combined without anyone reading
// one site's update.
type SecureAggregation struct {
	Enabled bool `json:"enabled"`
	// Scheme, e.g. "mhe" (multiparty homomorphic encryption).
	Scheme       string `json:"scheme"`
	ParameterSet string `json:"parameter_set"`
	SecurityBits int    `json:"security_bits"`
	// Threshold of Parties must take part to decrypt the sum.
	Threshold int                `json:"threshold"`
	Parties   int                `json:"parties"`
	Rounds    []AggregationRound `json:"rounds"`
}

// AggregationRound records who was expected and who dropped out.
type AggregationRound struct {
	Round       int      `json:"round"`
	Expected    int      `json:"expected"`
	Contributed int      `json:"contributed"`
	Dropped     []string `json:"dropped,omitempty"`
}

// Action is a step in the chain of custody.
type Action string

const (
	ActionSubmitted Action = "submitted"
	ActionApproved  Action = "approved"
	ActionPublished Action = "published"
	ActionExported  Action = "exported"
)

// Event is who did what, when.
type Event struct {
	Action Action    `json:"action"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// ModelVersion is one link of the model's hash lineage.
type ModelVersion struct {
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	Parent      string    `json:"parent,omitempty"`
	JobID       string    `json:"job_id"`
	SpecHash    string    `json:"spec_sha256"`
	CodeVersion string    `json:"code_version"`
	CreatedAt   time.Time `json:"created_at"`
}

// HIPAAControl is one row of the HIPAA Security Rule §164.312 table.
type HIPAAControl struct {
	Section  string `json:"section"`
	Standard string `json:"standard"`
	Concord  string `json:"concord"`
	Hospital string `json:"hospital"`
}

// GDPRRecord is the record of processing activities of GDPR Art. 30(1).
// Fields only a hospital can answer hold a [ToComplete] placeholder.
type GDPRRecord struct {
	// (a) controllers, joint controllers, representatives and DPOs.
	Controllers []Controller `json:"controllers"`
	// (b)
	Purposes []string `json:"purposes"`
	// (c)
	DataSubjects []string `json:"categories_of_data_subjects"`
	PersonalData []string `json:"categories_of_personal_data"`
	// (d)
	Recipients []string `json:"recipients"`
	// (e)
	ThirdCountryTransfers string `json:"third_country_transfers"`
	// (f)
	ErasureTimeLimits string `json:"erasure_time_limits"`
	// (g)
	SecurityMeasures []string `json:"security_measures"`
}

// Controller is a (joint) controller and its data protection officer.
type Controller struct {
	Name       string `json:"name"`
	Role       string `json:"role"`
	Contact    string `json:"contact"`
	DPOContact string `json:"dpo_contact"`
}

// Checkpoint is the audit-log checkpoint the report was built from.
type Checkpoint struct {
	Origin   string `json:"origin"`
	TreeSize uint64 `json:"tree_size"`
	RootHash string `json:"root_hash"`
	// Note is the checkpoint's signed note text, verbatim.
	Note      string        `json:"note"`
	Witnesses []Cosignature `json:"witnesses"`
	// Alarms are the sites' refusals to cosign a checkpoint of this log
	// (a history they found truncated, rewritten or forked), newest per
	// site; empty when no site ever refused.
	Alarms []WitnessAlarm `json:"alarms,omitempty"`
}

// WitnessAlarm is a site's refusal to cosign an audit checkpoint.
type WitnessAlarm struct {
	Site             string    `json:"site"`
	Time             time.Time `json:"time"`
	Reason           string    `json:"reason"`
	Size             uint64    `json:"size"`
	CheckpointSHA256 string    `json:"checkpoint_sha256"`
}

// Cosignature is a witness's signature on the checkpoint.
type Cosignature struct {
	Name      string `json:"name"`
	Signature string `json:"signature"`
}

// Signature is the report's own Ed25519 signature.
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	// Value is the base64 (standard encoding) signature over [Canonical]:
	// the report's JSON with this Value empty.
	Value string `json:"value"`
}
