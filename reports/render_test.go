package reports

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var keep = flag.String("keep", "", "write the synthetic results and their report here (to look at the plots)")

// checkPNG decodes a PNG fully and checks it has a sensible size.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, path)
	b := img.Bounds()
	require.Greater(t, b.Dx(), 300, path)
	require.Greater(t, b.Dy(), 200, path)
}

// checkXML parses a document to the end with a strict XML decoder: every
// element closed, every entity known. It returns the root element's name.
func checkXML(t *testing.T, name string, data []byte) string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	root := ""
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, name)
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				require.Empty(t, root, "%s: two root elements", name)
				root = el.Name.Local
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	require.Zero(t, depth, name)
	return root
}

// checkSVG checks an SVG is well-formed, has the font embedded and no NaN
// or infinite coordinate.
func checkSVG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "svg", checkXML(t, path, data))
	require.Contains(t, string(data), "@font-face", "%s: font not embedded", path)
	require.Contains(t, string(data), "data:font/ttf;", path)
	require.NotRegexp(t, badNumber, stripFonts(string(data)), path)
}

// badNumber finds a NaN or infinity in a coordinate or path.
var badNumber = regexp.MustCompile(`(?i)\b(d|x|y|width|height|transform|viewBox)="[^"]*(nan|inf)`)

// stripFonts drops the base64 font data (half a megabyte per font) so the
// checks look at the drawing only.
func stripFonts(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "base64,")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len("base64,")])
		s = s[i+len("base64,"):]
		j := strings.IndexFunc(s, func(r rune) bool {
			return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '=')
		})
		if j < 0 {
			return b.String()
		}
		s = s[j:]
	}
}

// checkHTML checks index.html is well-formed (as XML), holds its plots
// inline and reaches for nothing outside itself.
func checkHTML(t *testing.T, path string, wantFigures int) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "html", checkXML(t, path, data))
	page := stripFonts(string(data))
	require.Equal(t, wantFigures, strings.Count(page, "<svg "), "inline SVGs")
	require.Equal(t, 1, strings.Count(string(data), "@font-face"), "the font is embedded once")
	require.NotContains(t, page, "<script")
	require.NotContains(t, page, "<link")
	require.NotContains(t, page, "<img")
	// No URL but the SVG namespaces.
	for _, m := range regexp.MustCompile(`https?://[^"' )]+`).FindAllString(page, -1) {
		require.Contains(t, []string{"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, m)
	}
	require.NotRegexp(t, badNumber, page)
}

func TestRenderSynthetic(t *testing.T) {
	root := t.TempDir()
	if *keep != "" {
		root = *keep
		require.NoError(t, os.RemoveAll(root))
	}
	writeSyntheticResults(t, root)
	res, err := Load(root)
	require.NoError(t, err)
	require.Len(t, res.Experiments, 4)
	var text bytes.Buffer
	require.NoError(t, WriteText(&text, res))
	dpi := 60 // small PNGs keep the test fast
	if *keep != "" {
		dpi = 0 // the real size, to look at
	}
	rep, err := Write(res, root, Options{DPI: dpi})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Plots)
	for _, p := range rep.Plots {
		switch filepath.Ext(p) {
		case ".png":
			checkPNG(t, p)
		case ".svg":
			checkSVG(t, p)
		default:
			t.Fatalf("unexpected plot file %s", p)
		}
	}
	checkHTML(t, rep.HTML, len(rep.Plots)/2)
	md, err := os.ReadFile(rep.Markdown)
	require.NoError(t, err)
	report := string(md)
	for _, want := range []string{
		"## Experiment selective-copy", "## Experiment mqar", "## Experiment broken", "## Kernel benchmarks",
		"accuracy vs seq_len", "accuracy vs d_model", "scaling", "Kernel benchmark of attention",
		"length extrapolation", "Accuracy by evaluation length", "oom |",
		"diverged", "incomplete", "unreadable", "nothing to plot", "Mean over seeds",
		`panic: index out of range [3] with length 3 \| in lstm.Forwa…`, // '|' escaped in the table
	} {
		require.True(t, strings.Contains(report, want), "report.md lacks %q", want)
	}
	// The fitted exponents are in the scaling legends.
	svg, err := os.ReadFile(filepath.Join(root, "plots", "mqar-scaling-seq_len-64.svg"))
	require.NoError(t, err)
	require.Regexp(t, `transformer: loss ~ N\^-0\.\d{3}, C\^-0\.\d{3}`, string(svg))
	// Every image report.md links exists.
	for _, m := range regexp.MustCompile(`\]\((plots/[^)]+)\)`).FindAllStringSubmatch(report, -1) {
		_, err := os.Stat(filepath.Join(root, m[1]))
		require.NoError(t, err, m[1])
	}
	// The diverged selective-copy run is in the table, not in the curves.
	require.Contains(t, text.String(), "loss is NaN at step 212")
}
