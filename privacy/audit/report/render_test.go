package report

import (
	"bytes"
	"encoding/csv"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/internal/testenv"
)

func TestCSVIsOneTable(t *testing.T) {
	r := signedSample(t)
	r.Purpose = "=HYPERLINK(\"http://evil\")"
	_, priv := testKey()
	if err := Sign(r, priv, "k"); err != nil {
		t.Fatal(err)
	}
	file := render(t, r, FormatCSV)
	bom := []byte("\ufeff")
	if !bytes.HasPrefix(file, bom) {
		t.Error("no UTF-8 byte-order mark: Excel would misread accented names")
	}
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(file, bom))).ReadAll()
	if err != nil {
		t.Fatalf("a spreadsheet reader cannot parse the CSV: %v", err)
	}
	if got := strings.Join(rows[0], ","); got != "section,item,field,value" {
		t.Fatalf("header = %q", got)
	}
	get := map[string]string{}
	sections := map[string]int{}
	for _, row := range rows[1:] {
		get[row[0]+"|"+row[1]+"|"+row[2]] = row[3]
		sections[row[0]]++
	}
	for _, s := range []string{"report", "site", "differential_privacy", "epsilon_budget", "epsilon", "receipt", "secure_aggregation",
		"aggregation_round", "custody", "model_lineage", "hipaa_security_rule", "gdpr_article_30", "audit_checkpoint", "witness", "signature", csvSigned} {
		if sections[s] == 0 {
			t.Errorf("no rows for section %q", s)
		}
	}
	if got, want := sections["epsilon"], 3*10*5; got != want {
		t.Errorf("%d epsilon rows, want %d (3 sites x 10 rounds x 5 fields)", got, want)
	}
	for key, want := range map[string]string{
		"site|charite|records.patients":                "7893",
		"epsilon|northfield round 4|epsilon":           "0",
		"epsilon|st-marys round 10|cumulative_epsilon": "5.396",
		"epsilon|st-marys round 10|level":              "record",
		"secure_aggregation||threshold":                "2",
		"aggregation_round|4|dropped":                  "northfield",
		"hipaa_security_rule|§164.312(e)|standard":     "Transmission security",
		"report||generated_at":                         "2026-11-27T14:30:00Z",
		"report||purpose":                              "'=HYPERLINK(\"http://evil\")",
		"differential_privacy||orders":                 "1.5; 2; 3; 4; 8; 16; 32; 64",
		"gdpr_article_30||third_country_transfers":     r.GDPR.ThirdCountryTransfers,
		"audit_checkpoint||tree_size":                  "1843",
		"model_lineage|v3|parent":                      "v2",
		"signature||key_id":                            "k",
		"epsilon_budget|northfield|epsilon_budget":     "10",
		"gdpr_article_30||controllers[1].name":         "Charité – Universitätsmedizin Berlin",
		"receipt|charite round 1|signature":            r.Privacy.Receipts[10].Signature,
		"differential_privacy||level":                  "record",
		"site|st-marys|deidentification_profile":       r.Sites[0].Deidentification,
		"custody|1|action":                             "submitted",
		"witness|witness.charite|name":                 "witness.charite",
		"epsilon_budget|st-marys|spent_before":         "1.2",
		"aggregation_round|3|contributed":              "3",
		"site|northfield|certificate_expiry":           "2027-03-30T00:00:00Z",
		"differential_privacy||delta":                  "1e-05",
		"secure_aggregation||security_bits":            "128",
	} {
		if got, ok := get[key]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", key, got, ok, want)
		}
	}
}

// A job that ran without differential privacy or secure aggregation says
// so in every format, and the files still verify.
func TestReportWithProtectionsOff(t *testing.T) {
	pub, priv := testKey()
	r := Sample()
	r.Privacy = DP{Enabled: false}
	r.SecureAggregation = SecureAggregation{Enabled: false}
	r.HIPAA = HIPAATable(r)
	r.GDPR = GDPRRecordFor(r)
	if err := Sign(r, priv, "k"); err != nil {
		t.Fatal(err)
	}
	for _, f := range formats {
		file := render(t, r, f)
		if _, err := ExtractAndVerify(file, pub); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	html := string(render(t, r, FormatHTML))
	for _, want := range []string{"Differential privacy was OFF for this job", "Secure aggregation was OFF for this job", "could read each site&#39;s model update"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML does not say %q", want)
		}
	}
	if strings.Contains(html, `id="epsilon-chart"`) {
		t.Error("HTML draws an epsilon chart for a job without differential privacy")
	}
	if !strings.Contains(r.HIPAA[4].Concord, "Secure aggregation was OFF") {
		t.Errorf("HIPAA transmission security does not say secure aggregation was off: %q", r.HIPAA[4].Concord)
	}
}

// The PDF is read by poppler, the reader most Linux tools use: a real
// multi-page document with a title page and page numbers.
func TestPDFReadsAsDocument(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		testenv.Missing(t, "pdftotext is missing (apt-get install -y poppler-utils): %v", err)
	}
	_, priv := testKey()
	r := Sample()
	// Beyond Windows-1252, as many hospitals' names are.
	r.Sites[2].DataController = "Uniwersytecki Szpital Kliniczny w Łodzi"
	if err := Sign(r, priv, "k"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(file, render(t, r, FormatPDF), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", file, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	pages := strings.Split(string(out), "\f")
	if n := len(pages) - 1; n < 5 {
		t.Fatalf("%d pages, want a multi-page document", n)
	}
	first := pages[0]
	for _, want := range []string{"Compliance report", r.Consortium, "Model v3, trained by job 7", "2026-11-27 14:30 UTC", "tree size 1843", r.Checkpoint.RootHash, "Page 1 of"} {
		if !strings.Contains(first, want) {
			t.Errorf("title page lacks %q:\n%s", want, first)
		}
	}
	all := string(out)
	for _, want := range []string{"1. Purpose and legal basis", "3. Differential privacy", "§164.312(e)", "GDPR Article 30", "TO BE COMPLETED BY THE HOSPITAL", "Charité", "Kliniczny w Łodzi", "witness.charite"} {
		if !strings.Contains(all, want) {
			t.Errorf("PDF lacks %q", want)
		}
	}
	out, err = exec.Command("pdfimages", "-list", file).CombinedOutput()
	if err == nil && !strings.Contains(string(out), "1200   675") {
		t.Errorf("the epsilon chart is not embedded at 1200x675:\n%s", out)
	}
}

// Sample is what tests and documentation rely on: consistent numbers.
func TestSampleIsConsistent(t *testing.T) {
	r := Sample()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(r.Sites) != 3 || len(r.Privacy.Sites) != 3 || r.SecureAggregation.Threshold != 2 || r.SecureAggregation.Parties != 3 {
		t.Fatalf("sample is not 3 sites with t=2 of 3")
	}
	receipts := map[string]Receipt{}
	for _, rc := range r.Privacy.Receipts {
		receipts[rc.Site+"/"+strconv.Itoa(rc.Round)] = rc
	}
	dropped := map[string]bool{}
	for _, ar := range r.SecureAggregation.Rounds {
		if ar.Contributed < r.SecureAggregation.Threshold || ar.Expected-ar.Contributed != len(ar.Dropped) {
			t.Errorf("round %d: %+v", ar.Round, ar)
		}
		for _, s := range ar.Dropped {
			dropped[s+"/"+strconv.Itoa(ar.Round)] = true
		}
	}
	for _, b := range r.Privacy.Sites {
		if len(b.Rounds) != 10 {
			t.Fatalf("%s: %d rounds", b.Site, len(b.Rounds))
		}
		cum := b.SpentBefore
		for _, rs := range b.Rounds {
			cum += rs.Epsilon
			if math.Abs(cum-rs.Cumulative) > 1e-9 {
				t.Errorf("%s round %d: cumulative %v, sum of rounds %v", b.Site, rs.Round, rs.Cumulative, cum)
			}
			key := b.Site + "/" + strconv.Itoa(rs.Round)
			rc, ok := receipts[key]
			if dropped[key] != (rs.Epsilon == 0) || ok == dropped[key] {
				t.Errorf("%s round %d: epsilon %v, dropped %v, receipt %v", b.Site, rs.Round, rs.Epsilon, dropped[key], ok)
			}
			if ok && (rc.Epsilon != rs.Epsilon || rc.Cumulative != rs.Cumulative) {
				t.Errorf("%s round %d: receipt %v/%v, table %v/%v", b.Site, rs.Round, rc.Epsilon, rc.Cumulative, rs.Epsilon, rs.Cumulative)
			}
		}
		if cum > b.Budget {
			t.Errorf("%s spent %v over its budget %v", b.Site, cum, b.Budget)
		}
	}
	if got := len(Placeholders(r)); got == 0 {
		t.Error("the sample's GDPR record has no placeholder for the hospitals")
	}
}

// A consortium of 40 hospitals makes a GDPR row taller than a page: it
// continues on the next page and nothing is lost.
func TestPDFSplitsRowsTallerThanAPage(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		testenv.Missing(t, "pdftotext is missing (apt-get install -y poppler-utils): %v", err)
	}
	_, priv := testKey()
	r := Sample()
	for i := len(r.Sites); i < 40; i++ {
		s := r.Sites[i%3]
		s.Name = "hospital-" + strconv.Itoa(i)
		s.DataController = "Regional Hospital Number " + strconv.Itoa(i)
		r.Sites = append(r.Sites, s)
	}
	r.GDPR = GDPRRecordFor(r)
	if err := Sign(r, priv, "k"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "big.pdf")
	if err := os.WriteFile(file, render(t, r, FormatPDF), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-raw", file, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	gdpr := string(out)[strings.Index(string(out), "8. GDPR Article 30"):]
	for i := 3; i < 40; i++ {
		if !strings.Contains(gdpr, "Regional Hospital Number "+strconv.Itoa(i)+", joint controller") {
			t.Errorf("the GDPR record lost hospital %d", i)
		}
	}
}

// Names come from job specs and certificates: markup is shown, not run,
// and characters no font has do not stop a report.
func TestOddTextIsRenderedSafely(t *testing.T) {
	pub, priv := testKey()
	r := Sample()
	r.Consortium = `Ünïcødé 🏥 консорциум <script>alert(1)</script> & "quotes"`
	r.Sites[0].DataController = "</script><img src=x onerror=alert(2)>"
	r.Purpose = "\x00\t\r\nline two"
	if err := Sign(r, priv, "k"); err != nil {
		t.Fatal(err)
	}
	for _, f := range formats {
		file := render(t, r, f)
		got, err := ExtractAndVerify(file, pub)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got.Consortium != r.Consortium {
			t.Errorf("%s: consortium read back as %q", f, got.Consortium)
		}
		if f == FormatHTML {
			html := string(file)
			for _, bad := range []string{"<script>alert(1)", "<img src=x", "</script><img"} {
				if strings.Contains(html, bad) {
					t.Errorf("HTML contains markup from the data: %q", bad)
				}
			}
		}
	}
}

// TestWitnessAlarmsAreReported: a site's refusal to cosign reaches the
// officer in every format; without one, the report says none happened.
func TestWitnessAlarmsAreReported(t *testing.T) {
	r := Sample()
	var html bytes.Buffer
	if err := WriteHTML(&html, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "No site has ever refused to cosign") {
		t.Error("a report without alarms does not say so")
	}
	r.Checkpoint.Alarms = []WitnessAlarm{{Site: "st-marys", Time: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
		Reason: "log history rewritten at size 42", Size: 57, CheckpointSHA256: strings.Repeat("ab", 32)}}
	html.Reset()
	var csv, js bytes.Buffer
	for _, w := range []struct {
		write func(io.Writer, *Report) error
		buf   *bytes.Buffer
	}{{WriteHTML, &html}, {WriteCSV, &csv}, {WriteJSON, &js}} {
		if err := w.write(w.buf, r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.buf.String(), "log history rewritten at size 42") || !strings.Contains(w.buf.String(), "st-marys") {
			t.Errorf("the alarm is missing from a format:\n%.300s", w.buf.String())
		}
	}
	if !strings.Contains(html.String(), "WITNESS ALARMS") {
		t.Error("the HTML does not flag the alarm")
	}
}
