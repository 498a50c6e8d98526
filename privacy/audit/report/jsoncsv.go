package report

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// WriteJSON writes the report as indented JSON: the signed object itself.
func WriteJSON(w io.Writer, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// csvSigned is the section of the CSV rows that carry the signed report.
const csvSigned = "signed_report"

// csvChunk keeps each cell of the signed data well under spreadsheet cell
// limits (32,767 characters in Excel and LibreOffice).
const csvChunk = 8000

// WriteCSV writes the report in long format, one fact per row, with the
// columns section,item,field,value: section is the report's part
// ("site", "epsilon", "receipt", ...), item names the row within it (a
// site, a round, a HIPAA section), field the attribute. A spreadsheet
// opens it as one table that filters and pivots by section. The last rows
// (section "signed_report") hold the signed JSON in base64 pieces so that
// the file can be verified. The file is UTF-8 with a byte-order mark and
// CRLF line ends (RFC 4180). Text cells starting with = + - @ get a leading
// apostrophe so a spreadsheet does not run them as formulas.
func WriteCSV(w io.Writer, r *Report) error {
	signed, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("write report csv: %w", err)
	}
	// The byte-order mark tells Excel the file is UTF-8; without it
	// "Charité" opens as "CharitÃ©".
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return fmt.Errorf("write report csv: %w", err)
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // RFC 4180; what spreadsheets expect
	rows := [][]string{{"section", "item", "field", "value"}}
	rows = append(rows, csvRows(r)...)
	rows = append(rows, []string{csvSigned, "about", "note", "The rows below hold the signed report (JSON, base64, in order). Verify with: concordctl audit verify --file <this file>"})
	enc := base64.StdEncoding.EncodeToString(signed)
	n := (len(enc) + csvChunk - 1) / csvChunk
	for i := 0; i < n; i++ {
		part := enc[i*csvChunk : min(len(enc), (i+1)*csvChunk)]
		rows = append(rows, []string{csvSigned, fmt.Sprintf("part %d of %d", i+1, n), "json_base64", part})
	}
	for _, row := range rows {
		for i := range row {
			row[i] = cell(row[i])
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write report csv: %w", err)
		}
	}
	cw.Flush()
	return cw.Error()
}

func cell(s string) string {
	if s == "" || !strings.ContainsAny(s[:1], "=+-@\t\r") {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return "'" + s
}

// csvRows flattens the report, section by section, using the JSON names of
// the fields so that the CSV and the JSON speak the same language.
func csvRows(r *Report) [][]string {
	var rows [][]string
	add := func(section, item string, v any) {
		for _, kv := range flatten("", reflect.ValueOf(v)) {
			rows = append(rows, []string{section, item, kv[0], kv[1]})
		}
	}
	add("report", "", struct {
		Schema      string    `json:"schema"`
		Consortium  string    `json:"consortium"`
		Subject     Subject   `json:"subject"`
		GeneratedAt time.Time `json:"generated_at"`
		GeneratedBy string    `json:"generated_by"`
		Purpose     string    `json:"purpose"`
		LegalBasis  string    `json:"legal_basis"`
	}{r.Schema, r.Consortium, r.Subject, r.GeneratedAt, r.GeneratedBy, r.Purpose, r.LegalBasis})
	for _, s := range r.Sites {
		add("site", s.Name, s)
	}
	dp := r.Privacy
	add("differential_privacy", "", struct {
		Enabled         bool      `json:"enabled"`
		Level           Level     `json:"level"`
		Mechanism       string    `json:"mechanism"`
		ClippingNorm    float64   `json:"clipping_norm"`
		NoiseMultiplier float64   `json:"noise_multiplier"`
		SamplingRate    float64   `json:"sampling_rate"`
		Accountant      string    `json:"accountant"`
		Orders          []float64 `json:"orders"`
		Delta           float64   `json:"delta"`
	}{dp.Enabled, dp.Level, dp.Mechanism, dp.ClippingNorm, dp.NoiseMultiplier, dp.SamplingRate, dp.Accountant, dp.Orders, dp.Delta})
	for _, b := range dp.Sites {
		add("epsilon_budget", b.Site, struct {
			Level       Level   `json:"level"`
			Budget      float64 `json:"epsilon_budget"`
			SpentBefore float64 `json:"spent_before"`
		}{b.Level, b.Budget, b.SpentBefore})
	}
	for _, b := range dp.Sites {
		for _, rs := range b.Rounds {
			add("epsilon", b.Site+" round "+strconv.Itoa(rs.Round), struct {
				Site  string `json:"site"`
				Level Level  `json:"level"`
				RoundSpend
			}{b.Site, b.Level, rs})
		}
	}
	for _, rc := range dp.Receipts {
		add("receipt", rc.Site+" round "+strconv.Itoa(rc.Round), rc)
	}
	sa := r.SecureAggregation
	add("secure_aggregation", "", struct {
		Enabled      bool   `json:"enabled"`
		Scheme       string `json:"scheme"`
		ParameterSet string `json:"parameter_set"`
		SecurityBits int    `json:"security_bits"`
		Threshold    int    `json:"threshold"`
		Parties      int    `json:"parties"`
	}{sa.Enabled, sa.Scheme, sa.ParameterSet, sa.SecurityBits, sa.Threshold, sa.Parties})
	for _, ar := range sa.Rounds {
		add("aggregation_round", strconv.Itoa(ar.Round), ar)
	}
	for i, e := range r.Custody {
		add("custody", strconv.Itoa(i+1), e)
	}
	for _, m := range r.Lineage {
		add("model_lineage", m.Version, m)
	}
	for _, c := range r.HIPAA {
		add("hipaa_security_rule", c.Section, c)
	}
	add("gdpr_article_30", "", r.GDPR)
	c := r.Checkpoint
	add("audit_checkpoint", "", struct {
		Origin   string `json:"origin"`
		TreeSize uint64 `json:"tree_size"`
		RootHash string `json:"root_hash"`
		Note     string `json:"note"`
	}{c.Origin, c.TreeSize, c.RootHash, c.Note})
	for _, w := range c.Witnesses {
		add("witness", w.Name, w)
	}
	for _, a := range c.Alarms {
		add("witness_alarm", a.Site, a)
	}
	if r.Signature != nil {
		add("signature", "", *r.Signature)
	}
	return rows
}

// flatten lists the leaves of v as (json.path, value) pairs: nested
// structs join their names with dots, list elements get their index.
func flatten(prefix string, v reflect.Value) [][2]string {
	join := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return flatten(prefix, v.Elem())
	case reflect.Struct:
		if t, ok := v.Interface().(time.Time); ok {
			return [][2]string{{prefix, stampCSV(t)}}
		}
		var out [][2]string
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if f.Anonymous && name == "" {
				out = append(out, flatten(prefix, v.Field(i))...)
				continue
			}
			if name == "" || name == "-" {
				name = f.Name
			}
			out = append(out, flatten(join(name), v.Field(i))...)
		}
		return out
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct && v.Type().Elem().Kind() != reflect.Slice {
			parts := make([]string, v.Len())
			for i := range parts {
				parts[i] = leaf(v.Index(i))
			}
			return [][2]string{{prefix, strings.Join(parts, "; ")}}
		}
		var out [][2]string
		for i := 0; i < v.Len(); i++ {
			out = append(out, flatten(fmt.Sprintf("%s[%d]", prefix, i), v.Index(i))...)
		}
		return out
	}
	return [][2]string{{prefix, leaf(v)}}
}

func leaf(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// stampCSV is a time as ISO 8601, which spreadsheets read as a date.
func stampCSV(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
