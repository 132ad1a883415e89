package data

import "testing"

// Text is UTF-8 without NUL bytes; a shard header, an image or Latin-1
// bytes are not.
func TestIsText(t *testing.T) {
	for _, c := range []struct {
		b    string
		want bool
	}{
		{"", true},
		{"plain text\n", true},
		{"déjà vu — ✓\n", true},
		{"a\x00b", false},
		{"\x89PNG\r\n\x1a\n", false},
		{"caf\xe9", false}, // Latin-1
		{"\xc5\x00\x00\x00", false},
	} {
		if got := IsText([]byte(c.b)); got != c.want {
			t.Errorf("IsText(%q) = %v, want %v", c.b, got, c.want)
		}
	}
}
