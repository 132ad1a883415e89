package tasks

import (
	"fmt"
	"strconv"
	"strings"
)

// renderRows lays out a decoded sequence as Decode shows it: an input line
// and a target line of right-aligned cells (at least width wide), joined by
// single spaces, with '|' standing before position sep in both lines (no
// separator when sep < 0). Sequences longer than 32 positions wrap into rows
// of 32 labelled with their first position (@0, @32, ...), the labels
// padded so that every row's cells start in the same column.
func renderRows(in, tg []string, width, sep int) string {
	for _, c := range append(in[:len(in):len(in)], tg...) {
		width = max(width, len(c))
	}
	cell := func(s string) string { return strings.Repeat(" ", width-len(s)) + s }
	const perRow = 32
	L := len(in)
	var sb strings.Builder
	for start := 0; start < L; start += perRow {
		end := min(start+perRow, L)
		var inRow, tgRow []string
		for p := start; p < end; p++ {
			if p == sep {
				inRow = append(inRow, cell("|"))
				tgRow = append(tgRow, cell("|"))
			}
			inRow = append(inRow, cell(in[p]))
			tgRow = append(tgRow, cell(tg[p]))
		}
		inLabel, tgLabel := "input : ", "target: "
		if L > perRow {
			pos := fmt.Sprintf("@%-*d", len(strconv.Itoa(L-1)), start)
			inLabel, tgLabel = "input  "+pos+": ", "target "+pos+": "
		}
		if start > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(inLabel + strings.Join(inRow, " ") + "\n")
		sb.WriteString(tgLabel + strings.Join(tgRow, " "))
	}
	return sb.String()
}
