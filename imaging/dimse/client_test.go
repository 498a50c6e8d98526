package dimse

import (
	"net/url"
	"strings"
	"testing"
)

func TestOpenURL(t *testing.T) {
	cases := []struct {
		url, want string // want: "" for success, else part of the error
	}{
		{"dicom://PACS@127.0.0.1:104", ""},
		{"dicom://PACS@127.0.0.1:104?calling=SITE1", ""},
		{"dicom://PACS@127.0.0.1:104?move=1&scp_port=0", ""},
		{"http://PACS@127.0.0.1:104", "scheme must be dicom"},
		{"dicom://127.0.0.1:104", "AE title goes before @"},
		{"dicom://PACS:secret@127.0.0.1:104", "DIMSE has no passwords"},
		{"dicom://PACS@127.0.0.1", "host and port are required"},
		{"dicom://PACS@127.0.0.1:104/studies", "a path has no meaning"},
		{"dicom://PACS@127.0.0.1:104?tls=1", `unknown parameter "tls"`},
		{"dicom://PACS@127.0.0.1:104?move=1", "move=1 needs scp_port"},
		{"dicom://PACS@127.0.0.1:104?scp_port=11112", "scp_port is used only with move=1"},
		{"dicom://PACS@127.0.0.1:104?move=yes", "want 1 or 0"},
		{"dicom://PACS@127.0.0.1:104?move=1&scp_port=70000", "not a port number"},
		{"dicom://PACS@127.0.0.1:104?calling=A_TITLE_OF_17_CHR", "must be 1 to 16 characters"},
		{"dicom://PACS@127.0.0.1:104?calling=A%5CB", "character DICOM does not allow"},
		{"dicom://PACS@127.0.0.1:104?calling=A&calling=B", "given 2 times"},
	}
	for _, tc := range cases {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(u, Options{})
		if c != nil {
			c.Close()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error containing %q", tc.url, err, tc.want)
		}
	}
	u, _ := url.Parse("dicom://PACS@127.0.0.1:104")
	if _, err := Open(u, Options{StorageClasses: make([]string, 12)}); err == nil || !strings.Contains(err.Error(), "presentation contexts") {
		t.Errorf("12 storage classes: got %v, want a refusal", err)
	}
}

func TestFinalStatus(t *testing.T) {
	cases := []struct {
		status                      uint16
		completed, failed, received int
		want                        string
	}{
		{0x0000, 3, 0, 3, ""},
		{0x0000, -1, -1, 2, ""},
		{0x0000, 3, 0, 2, "reports 3 instances sent, 2 arrived"},
		{0xB000, 2, 1, 2, "C-GET ended with status 0xB000 (warning: some sub-operations failed); sub-operations: 2 completed, 1 failed"},
		{0xA702, 0, 3, 0, "C-GET failed with status 0xA702 (refused: out of resources); sub-operations: 0 completed, 3 failed"},
		{0xA801, -1, -1, 0, "move destination unknown"},
		{0xFE00, 1, 0, 1, "cancelled by the PACS after 1 instances"},
		{0xC000, -1, -1, 0, "unable to process"},
	}
	for _, tc := range cases {
		err := finalStatus("C-GET", &command{status: tc.status, completed: tc.completed, failed: tc.failed, warning: -1}, tc.received)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("0x%04X: %v", tc.status, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("0x%04X: got %v, want %q", tc.status, err, tc.want)
		}
	}
}
