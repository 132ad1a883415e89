package archtest

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
)

// Decode parses src as YAML and decodes it as a model block (arch.Decode);
// a YAML syntax error fails t.
func Decode(t testing.TB, src string) (arch.Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("yaml %q: %v", src, err)
	}
	return arch.Decode(doc.Content[0])
}

// DecodeCase is a model block and what decoding it must say: substrings
// of the error (the field, the value, what is allowed), or nil when the
// block is valid.
type DecodeCase struct {
	Src  string
	Want []string
}

// CheckDecodeErrors decodes every block and checks that the rejected ones
// fail with an error naming what each case wants and the accepted ones
// decode.
func CheckDecodeErrors(t testing.TB, cases []DecodeCase) {
	t.Helper()
	for i, tc := range cases {
		_, err := Decode(t, tc.Src)
		if tc.Want == nil {
			if err != nil {
				t.Errorf("case %d %s: unexpected error %v", i, tc.Src, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("case %d %s: no error", i, tc.Src)
			continue
		}
		for _, w := range tc.Want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d %s: error %q does not mention %q", i, tc.Src, err, w)
			}
		}
	}
}
