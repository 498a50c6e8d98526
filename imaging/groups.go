package imaging

import (
	"strconv"
	"strings"
	"unicode"
)

// Subgroup fields: the coarse, de-identified header attributes a
// validation site may report a model's performance by. Nothing finer is
// read: an exact age, a birth date or an institution narrows a subgroup
// towards a person.
const (
	GroupSex          = "sex"          // PatientSex: M, F or O
	GroupAge          = "age"          // PatientAge in bands: 0-17, 18-39, 40-64, 65+
	GroupManufacturer = "manufacturer" // Manufacturer
	GroupModel        = "model"        // ManufacturerModelName
)

// GroupFields lists the subgroup fields in a fixed order.
var GroupFields = []string{GroupSex, GroupAge, GroupManufacturer, GroupModel}

const (
	tagManufacturer      Tag = 0x00080070
	tagManufacturerModel Tag = 0x00081090
	tagPatientSex        Tag = 0x00100040
	tagPatientAge        Tag = 0x00101010
)

// maxGroupValue bounds a device name: subgroup values travel in signed
// receipts and are shown to people.
const maxGroupValue = 64

// Groups returns im's subgroup values by field; a field the file does not
// state, or states in a form outside the standard's, is "" (unknown).
func (im *Image) Groups() map[string]string {
	g := map[string]string{GroupSex: "", GroupAge: "", GroupManufacturer: "", GroupModel: ""}
	if im == nil || im.File == nil || im.File.Data == nil {
		return g
	}
	ds := im.File.Data
	switch s := strings.ToUpper(strings.TrimSpace(ds.String(tagPatientSex))); s {
	case "M", "F", "O":
		g[GroupSex] = s
	}
	g[GroupAge] = AgeBand(ds.String(tagPatientAge))
	g[GroupManufacturer] = DeviceName(ds.String(tagManufacturer))
	g[GroupModel] = DeviceName(ds.String(tagManufacturerModel))
	return g
}

// AgeBand maps a DICOM age string (AS: nnnD, nnnW, nnnM or nnnY) to its
// band, "" when it is not one.
func AgeBand(as string) string {
	as = strings.TrimSpace(as)
	if len(as) != 4 {
		return ""
	}
	n, err := strconv.Atoi(as[:3])
	if err != nil || n < 0 {
		return ""
	}
	years := 0
	switch as[3] {
	case 'Y':
		years = n
	case 'M':
		years = n / 12
	case 'W':
		years = n / 52
	case 'D':
		years = n / 365
	default:
		return ""
	}
	switch {
	case years < 18:
		return "0-17"
	case years < 40:
		return "18-39"
	case years < 65:
		return "40-64"
	}
	return "65+"
}

// DeviceName makes a Manufacturer or model name safe to keep and show:
// spaces collapsed, control characters dropped, at most 64 bytes of valid
// UTF-8 (a name is stored as JSON, which would rewrite invalid bytes and
// make the same name two categories).
func DeviceName(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) > maxGroupValue {
		s = strings.TrimSpace(strings.ToValidUTF8(s[:maxGroupValue], ""))
	}
	return s
}
