package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/imaging/pacs"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testorthanc"
	siteagent "github.com/concord-fl/concord/site-agent"
)

func TestAgentConfigPACS(t *testing.T) {
	t.Setenv("CONCORD_KEY_PASSPHRASE", "a passphrase long enough for the test")
	good := "data:\n  classes: [normal, lesion]\n  pacs:\n    url: http://127.0.0.1:8042/dicom-web\n    labels: labels.csv\n" +
		"    cache_size: 2GiB\n    requests_per_second: 5\n    concurrency: 3\n    timeout: 30s\n    refresh: 6h\n" +
		"    queries:\n      - {modality: CR, body_part: CHEST, from: 2020-01-01, to: 20241231}\n      - {modality: DX, series_description: 'PA*'}\n"
	for _, tc := range []struct {
		name, data, err string
	}{
		{"pacs", good, ""},
		{"no cache size", strings.Replace(good, "    cache_size: 2GiB\n", "", 1), "data.pacs.cache_size: give the disk"},
		{"bad cache size", strings.Replace(good, "2GiB", "lots", 1), `"lots" is not a size`},
		{"bad date", strings.Replace(good, "from: 2020-01-01", "from: 2020-13-01", 1), "data.pacs.queries[0].from"},
		{"dates reversed", strings.Replace(good, "to: 20241231", "to: 20191231", 1), "is before from"},
		{"no labels", strings.Replace(good, "    labels: labels.csv\n", "", 1), "data.pacs.labels"},
		{"labels missing", strings.Replace(good, "labels.csv", "nope.csv", 1), "labels: open"},
		{"folder and pacs", strings.Replace(good, "data:\n", "data:\n  dir: images\n", 1), "both set"},
		{"dimse", strings.Replace(good, "http://127.0.0.1:8042/dicom-web", "dicom://PACS@127.0.0.1:104?calling=SITEA", 1), ""},
		{"dimse bad url", strings.Replace(good, "http://127.0.0.1:8042/dicom-web", "dicom://127.0.0.1:104", 1), "AE title"},
		{"bad refresh", strings.Replace(good, "refresh: 6h", "refresh: daily", 1), "not a duration"},
		{"seg labels", strings.Replace(good, "labels: labels.csv", "seg_labels: true", 1), ""},
		{"seg and csv labels", strings.Replace(good, "labels: labels.csv", "labels: labels.csv\n    seg_labels: true", 1), "labels come from one place"},
		{"typo", strings.Replace(good, "concurrency:", "concurency:", 1), "unknown key concurency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := siteKit(t)
			state := t.TempDir()
			if err := os.WriteFile(filepath.Join(filepath.Dir(path), "labels.csv"), []byte("study_instance_uid,label\n1.2.3,normal\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			withConfig(t, path, func(s string) string {
				s = regexp.MustCompile(`(?m)^state_dir: .*$`).ReplaceAllString(s, "state_dir: "+state)
				return regexp.MustCompile(`(?m)^data: .*\n`).ReplaceAllString(s, tc.data)
			})
			cfg, _, closeFn, err := load(path)
			defer closeFn()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("load error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := cfg.Data.(*siteagent.PACSData); !ok {
				t.Fatalf("data source %T, want a PACS", cfg.Data)
			}
			if _, err := os.Stat(filepath.Join(state, "pacs.db")); err != nil {
				t.Errorf("the intake's records are not in the state folder: %v", err)
			}
		})
	}
}

func TestScanPACS(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	o := testorthanc.Start(t, testorthanc.Options{})
	for _, f := range []string{"CT_small.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm", "MR_small.dcm", "examples_overlay.dcm"} {
		o.Upload(t, filepath.Join(dir, f))
	}
	var out, errb bytes.Buffer
	if code := run([]string{"scan", "--pacs", o.DICOMweb, "--modality", "CT", "--modality", "MR", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var sum pacs.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Series != 5 || sum.Modalities["CT"] != 3 || sum.Modalities["MR"] != 2 || sum.EstimatedBytes <= 0 {
		t.Errorf("summary %+v", sum)
	}
	out.Reset()
	if code := run([]string{"scan", "--pacs", o.DICOMweb, "--modality", "CT", "--body-part", "HEAD"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"series     1\n", "instances  1\n", "HEAD", "not given by the PACS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("scan output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "1 of 1 series listed") {
		t.Errorf("no progress on stderr: %q", errb.String())
	}
	// With the agent's config: its queries and its labels CSV, which labels
	// CT_small's study and MR_small's; the other three images have none.
	conf := t.TempDir()
	var csv strings.Builder
	csv.WriteString("study_instance_uid,label\n")
	for f, label := range map[string]string{"CT_small.dcm": "normal", "MR_small.dcm": "lesion"} {
		fmt.Fprintf(&csv, "%s,%s\n", studyUID(t, filepath.Join(dir, f)), label)
	}
	writeFile(t, filepath.Join(conf, "labels.csv"), csv.String())
	agent := filepath.Join(conf, "agent.yaml")
	writeFile(t, agent, "data:\n  classes: [normal, lesion]\n  pacs:\n    url: "+o.DICOMweb+"\n    labels: labels.csv\n    cache_size: 1GiB\n"+
		"    queries:\n      - {modality: CT}\n      - {modality: MR}\n")
	out.Reset()
	if code := run([]string{"scan", "--config", agent, "--json", "--quiet"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var scan siteagent.PACSScan
	if err := json.Unmarshal(out.Bytes(), &scan); err != nil {
		t.Fatal(err)
	}
	if l := scan.Labels; scan.Series != 5 || scan.Images != 5 || l == nil || l.Source != "csv" ||
		fmt.Sprint(l.Classes) != "[{normal {1 1}} {lesion {1 1}}]" || fmt.Sprint(l.Unlabelled) != "map[no label in the labels file:{3 3}]" {
		t.Errorf("scan with the agent's config: %+v, labels %+v", scan, scan.Labels)
	}
	out.Reset()
	if code := run([]string{"scan", "--config", agent, "--modality", "MR", "--quiet"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{`series +2\n`, `images +2 `, `labels +from the labels CSV`, `class normal +0, 0\n`,
		`class lesion +1, 1\n`, `unlabelled 1: images, studies\n`, `no label in the labels file +1, 1\n`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("scan output lacks %q:\n%s", want, out.String())
		}
	}
	noPACS := filepath.Join(conf, "folder.yaml")
	writeFile(t, noPACS, "data:\n  dir: images\n")
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"scan", "--pacs", o.DICOMweb, "--decode"}, 2, "--decode apply to a folder scan"},
		{[]string{"scan", "--config", noPACS}, 1, "has no data.pacs section"},
		{[]string{"scan", "somedir", "--config", agent}, 2, "not both"},
		{[]string{"scan", "--pacs", o.DICOMweb, "somedir"}, 2, "not both"},
		{[]string{"scan", "somedir", "--modality", "CT"}, 2, "--modality apply with --pacs URL only"},
		{[]string{"scan", "--pacs", o.DICOMweb, "--from", "yesterday"}, 1, "not a date"},
		{[]string{"scan", "--pacs", o.URL + "/nothing-here"}, 1, "404"},
	} {
		errb.Reset()
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("%v: exit %d, %q; want %d, %q", tc.args, code, errb.String(), tc.code, tc.err)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func studyUID(t *testing.T, path string) string {
	t.Helper()
	im, err := imaging.ReadHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	return im.StudyInstanceUID
}
