package reports

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"strings"

	"golang.org/x/image/font/sfnt"
	"gonum.org/v1/plot/font"
)

// pageCSS styles index.html. It holds no '<' or '&' so the page stays
// well-formed XML (the tests parse it as such).
const pageCSS = `
body{font-family:"Liberation Sans",Arial,Helvetica,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.35em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}h3{font-size:1.1em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.4em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:3px 8px;white-space:nowrap}
th{background:#f2f2f2}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
figure{margin:.5em 0 2em}
figure svg{max-width:100%;height:auto}
figcaption{color:#444;margin-bottom:.4em}
nav ul{columns:2}
`

// writeHTML writes index.html: one self-contained page (the plots inline as
// SVG, the font embedded once, no script and no network).
func writeHTML(w io.Writer, res *Results, bs []block) error {
	fontCSS, err := fontFaceCSS()
	if err != nil {
		return err
	}
	esc := html.EscapeString
	var b bytes.Buffer
	title := reportTitle(res)
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"+
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>%s</title>\n<style>\n%s\n%s</style>\n</head>\n<body>\n",
		esc(title), fontCSS, pageCSS)
	// Anchors for every heading first, so the contents list (after the h1)
	// can link to the experiments below it.
	ids := make([]string, len(bs))
	seen := map[string]int{}
	var toc []int
	for i, bl := range bs {
		if bl.heading == "" {
			continue
		}
		id := slug(bl.heading)
		if id == "" {
			id = "section"
		}
		if seen[id]++; seen[id] > 1 {
			id = fmt.Sprintf("%s-%d", id, seen[id])
		}
		ids[i] = id
		if bl.level == 2 {
			toc = append(toc, i)
		}
	}
	for i, bl := range bs {
		switch {
		case bl.heading != "":
			fmt.Fprintf(&b, "<h%d id=\"%s\">%s</h%d>\n", bl.level, ids[i], esc(bl.heading), bl.level)
			if bl.level == 1 && len(toc) > 1 {
				b.WriteString("<nav><ul>\n")
				for _, j := range toc {
					fmt.Fprintf(&b, "<li><a href=\"#%s\">%s</a></li>\n", ids[j], esc(bs[j].heading))
				}
				b.WriteString("</ul></nav>\n")
			}
		case bl.text != "":
			fmt.Fprintf(&b, "<p>%s</p>\n", esc(bl.text))
		case bl.items != nil:
			b.WriteString("<ul>\n")
			for _, it := range bl.items {
				fmt.Fprintf(&b, "<li>%s</li>\n", esc(it))
			}
			b.WriteString("</ul>\n")
		case bl.table != nil:
			writeHTMLTable(&b, bl.table)
		case bl.fig != nil:
			svg, err := bl.fig.renderSVG(false)
			if err != nil {
				return fmt.Errorf("%s.svg: %w", bl.fig.name, err)
			}
			inline, err := inlineSVG(svg, bl.fig.title)
			if err != nil {
				return fmt.Errorf("%s.svg: %w", bl.fig.name, err)
			}
			fmt.Fprintf(&b, "<figure>\n<figcaption>%s (<a href=\"%s\">PNG</a>, <a href=\"%s\">SVG</a>)</figcaption>\n%s\n</figure>\n",
				esc(bl.fig.caption), esc(bl.png), esc(bl.svg), inline)
		}
	}
	b.WriteString("</body>\n</html>\n")
	_, err = w.Write(b.Bytes())
	return err
}

func writeHTMLTable(w *bytes.Buffer, t *table) {
	esc := html.EscapeString
	w.WriteString("<div class=\"scroll\"><table>\n<thead><tr>")
	for _, h := range t.header {
		fmt.Fprintf(w, "<th>%s</th>", esc(h))
	}
	w.WriteString("</tr></thead>\n<tbody>\n")
	for _, r := range t.rows {
		w.WriteString("<tr>")
		for i, c := range r {
			if i < len(t.right) && t.right[i] {
				fmt.Fprintf(w, "<td class=\"num\">%s</td>", esc(c))
			} else {
				fmt.Fprintf(w, "<td>%s</td>", esc(c))
			}
		}
		w.WriteString("</tr>\n")
	}
	w.WriteString("</tbody>\n</table></div>\n")
}

// inlineSVG drops the XML prolog of a vgsvg document so it can sit inside
// HTML, and gives it an accessible name.
func inlineSVG(svg []byte, title string) (string, error) {
	s := string(svg)
	i := strings.Index(s, "<svg")
	if i < 0 {
		return "", errors.New("no <svg> element")
	}
	s = s[i:]
	s = strings.Replace(s, "<svg ", fmt.Sprintf("<svg role=\"img\" aria-label=\"%s\" ", html.EscapeString(title)), 1)
	return strings.TrimSpace(s), nil
}

// fontFaceCSS embeds the plots' font once for the whole page, under the
// family name the inline SVGs ask for.
func fontFaceCSS() (string, error) {
	face := font.DefaultCache.Lookup(plotFont, 10)
	if face.Face == nil {
		return "", fmt.Errorf("font %v is not available to gonum/plot", plotFont)
	}
	var buf sfnt.Buffer
	family, err := face.Face.Name(&buf, sfnt.NameIDFamily)
	if err != nil {
		return "", err
	}
	var raw bytes.Buffer
	if _, err := face.Face.WriteSourceTo(nil, &raw); err != nil {
		return "", err
	}
	return fmt.Sprintf("@font-face{font-family:%q;font-weight:normal;font-style:normal;"+
		"src:url(data:font/ttf;base64,%s) format(\"truetype\")}", family, base64.StdEncoding.EncodeToString(raw.Bytes())), nil
}
