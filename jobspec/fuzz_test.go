package jobspec

import (
	"testing"

	"github.com/concord-fl/concord/learning"
)

// FuzzParse: whatever the job file, Parse returns without panicking, an
// error stays short, and a spec it accepts is valid and small enough to
// build. The model is sized, never built, so each input costs little.
func FuzzParse(f *testing.F) {
	f.Add([]byte(everyField))
	f.Add([]byte("name: defaults\n"))
	f.Add([]byte("model: {classes: 4294967295, base_width: 1024, height: 224, width: 224, channels: 3}\n"))
	f.Add([]byte("training: {learning_rate: .nan, clip_norm: .inf}\nprivacy: {epsilon: .inf}\n"))
	f.Add([]byte("sites: [a, a, B]\nvalidation_sites: [a]\nround_deadline: -1h\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			// Each problem quotes at most a short prefix of a value; the
			// bound allows for every field being wrong at once.
			if n := len(err.Error()); n > 64*1024 {
				t.Fatalf("error of %d bytes for %d bytes of input", n, len(data))
			}
			return
		}
		if err := Validate(s); err != nil {
			t.Fatalf("Parse accepted a spec Validate refuses: %v", err)
		}
		n, err := learning.ParamCount(ModelSpec(s))
		if err != nil || n > DefaultLimits().MaxModelParams {
			t.Fatalf("accepted a model of %d parameters (%v)", n, err)
		}
	})
}
