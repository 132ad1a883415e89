package reports

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"seqbench/train"
)

// Config paths with a fixed role in grouping.
const (
	seedKey = "train.seed" // runs differing only by it are aggregated
	lrKey   = "train.lr"   // a tuning knob: plots keep the best value
	archKey = "model.arch"
)

// design says what varies across an experiment's runs, and so how its runs
// group in tables and plots.
type design struct {
	// facetKeys are task.* and train.* paths that vary (seed and lr
	// aside): each combination of their values is a separate panel or
	// figure.
	facetKeys []string
	// seriesKeys are model.* paths that vary among runs of one arch: each
	// combination is its own line, labelled after the arch.
	seriesKeys []string
	// dependent are task/train paths that move in lockstep with a facet
	// key (MQAR's num_kv_pairs with seq_len): table columns, not facets.
	dependent  []string
	seedVaries bool
	lrVaries   bool
	// names are the short column and label names of the keys.
	names map[string]string
}

// analyse finds what varies. Values a run does not have (another arch's
// fields, a run without config.yaml) do not count as a difference.
func analyse(runs []*Run) design {
	var d design
	values := map[string]map[string]bool{}             // task.*/train.* key -> values
	perArch := map[string]map[string]map[string]bool{} // arch -> model key -> values
	for _, r := range runs {
		arch := r.Summary.Arch
		for _, k := range r.settingKeys() {
			v, _ := r.Setting(k)
			switch {
			case k == archKey || k == "experiment":
			case strings.HasPrefix(k, "model."):
				if perArch[arch] == nil {
					perArch[arch] = map[string]map[string]bool{}
				}
				addValue(perArch[arch], k, v)
			default:
				addValue(values, k, v)
			}
		}
	}
	// The sequence length leads: it is the x axis of most sweeps, and what
	// the others are tied to.
	keys := sortedKeys(values)
	slices.SortStableFunc(keys, func(a, b string) int { return boolCmp(a != "task.seq_len", b != "task.seq_len") })
	for _, k := range keys {
		if len(values[k]) < 2 {
			continue
		}
		switch {
		case k == seedKey:
			d.seedVaries = true
		case k == lrKey:
			d.lrVaries = true
		case lockstepWith(runs, k, d.facetKeys) != "":
			d.dependent = append(d.dependent, k)
		default:
			d.facetKeys = append(d.facetKeys, k)
		}
	}
	series := map[string]bool{}
	for _, keys := range perArch {
		for k, vs := range keys {
			if len(vs) > 1 {
				series[k] = true
			}
		}
	}
	groupHybrids(runs, series)
	d.seriesKeys = sortedKeys(series)
	all := append(append(append(slices.Clone(d.seriesKeys), d.facetKeys...), d.dependent...), lrKey, seedKey)
	d.names = shortNames(all)
	return d
}

func addValue(m map[string]map[string]bool, k, v string) {
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][v] = true
}

// shortNames maps each dotted path to its last element (d_state stays
// d_state), or the full path where two would collide.
func shortNames(keys []string) map[string]string {
	count := map[string]int{}
	for _, k := range keys {
		count[leaf(k)]++
	}
	out := map[string]string{}
	for _, k := range keys {
		if k == "task.name" {
			out[k] = "task" // "name" alone would not say of what
			continue
		}
		if count[leaf(k)] > 1 {
			out[k] = k
		} else {
			out[k] = leaf(k)
		}
	}
	return out
}

func leaf(k string) string {
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		return k[i+1:]
	}
	return k
}

// label writes a run's values of keys as "name=value ...", skipping keys
// the run does not have.
func (d design) label(r *Run, keys []string) string {
	var parts []string
	for _, k := range keys {
		if v, ok := r.Setting(k); ok {
			parts = append(parts, d.names[k]+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// panelTitle is label as a panel's title: on lines of at most
// panelTitleWidth characters where it is longer, so that the titles of
// panels side by side do not run into each other.
func (d design) panelTitle(r *Run, keys []string) string {
	return wrapWords(d.label(r, keys), panelTitleWidth)
}

// panelTitleWidth is about what a panel's width holds at the title's size.
const panelTitleWidth = 44

// wrapWords breaks s between words into lines of at most width characters
// (a longer word keeps a line of its own).
func wrapWords(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		switch {
		case i == 0:
		case n+1+len([]rune(w)) > width:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len([]rune(w))
	}
	return b.String()
}

// without returns keys less the ones given.
func without(keys []string, drop ...string) []string {
	var out []string
	for _, k := range keys {
		if !slices.Contains(drop, k) {
			out = append(out, k)
		}
	}
	return out
}

// compareValues orders setting values numerically where both are numbers.
func compareValues(a, b string) int {
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	switch {
	case ea == nil && eb == nil:
		return cmp.Compare(fa, fb)
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// compareRuns orders runs by arch (archOrder first), then by the values of
// keys in turn.
func compareRuns(a, b *Run, keys []string) int {
	if c := cmp.Compare(archRank(a.Summary.Arch), archRank(b.Summary.Arch)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Summary.Arch, b.Summary.Arch); c != 0 {
		return c
	}
	for _, k := range keys {
		va, _ := a.Setting(k)
		vb, _ := b.Setting(k)
		if c := compareValues(va, vb); c != 0 {
			return c
		}
	}
	return strings.Compare(a.Name, b.Name)
}

// lockstepWith returns the key among others whose values determine x's and
// the other way round over runs (a one-to-one map), or "". A run with one
// of the two settings and not the other breaks the lockstep: a setting
// only some tasks have (MAD's frac_noise) does not determine the task.
func lockstepWith(runs []*Run, x string, others []string) string {
	for _, o := range others {
		fwd, back := map[string]string{}, map[string]string{}
		same := true
		for _, r := range runs {
			vx, okx := r.Setting(x)
			vo, oko := r.Setting(o)
			if okx != oko {
				same = false
				break
			}
			if !okx {
				continue
			}
			if p, seen := fwd[vx]; seen && p != vo {
				same = false
				break
			}
			if p, seen := back[vo]; seen && p != vx {
				same = false
				break
			}
			fwd[vx], back[vo] = vo, vx
		}
		if same && len(fwd) > 0 {
			return o
		}
	}
	return ""
}

// bucket is a set of runs sharing the values of some keys.
type bucket struct {
	key  string // the values, joined
	runs []*Run
}

// groupBy splits runs by their values of keys (and arch when byArch),
// keeping the order of runs' first appearance after sorting.
func groupBy(runs []*Run, keys []string, byArch bool) []bucket {
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b *Run) int { return compareRuns(a, b, keys) })
	var out []bucket
	index := map[string]int{}
	for _, r := range sorted {
		var parts []string
		if byArch {
			parts = append(parts, r.Summary.Arch)
		}
		for _, k := range keys {
			v, _ := r.Setting(k)
			parts = append(parts, v)
		}
		key := strings.Join(parts, "\x00")
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, bucket{key: key})
		}
		out[i].runs = append(out[i].runs, r)
	}
	return out
}

// bestLR keeps the runs of the learning rate that did best: highest mean
// final accuracy, then lowest mean final loss. With one lr it returns runs
// as they are.
func bestLR(runs []*Run) (chosen []*Run, lr string) {
	groups := groupBy(runs, []string{lrKey}, false)
	if len(groups) == 1 {
		v, _ := runs[0].Setting(lrKey)
		return runs, v
	}
	best := 0
	for i := 1; i < len(groups); i++ {
		if betterRuns(groups[i].runs, groups[best].runs) {
			best = i
		}
	}
	lr, _ = groups[best].runs[0].Setting(lrKey)
	return groups[best].runs, lr
}

// betterRuns reports whether runs a did better than runs b: higher mean
// final accuracy, then lower mean final loss.
func betterRuns(a, b []*Run) bool {
	accA, accB := meanOf(a, finalAcc), meanOf(b, finalAcc)
	if accA != accB {
		return accA > accB || math.IsNaN(accB)
	}
	la, lb := meanOf(a, finalLoss), meanOf(b, finalLoss)
	return la < lb || (math.IsNaN(lb) && !math.IsNaN(la))
}

func finalAcc(r *Run) float64  { return r.Summary.FinalAccuracy }
func finalLoss(r *Run) float64 { return float64(r.Summary.FinalLoss) }

// trainFLOPs is the compute of a run: 3 × forward FLOPs/token × tokens (the
// backward pass costs about twice the forward).
func trainFLOPs(r *Run) float64 { return 3 * r.Summary.FLOPsPerToken * float64(r.Summary.Tokens) }

// stats are the mean, min and max of the finite values of f over runs.
type stats struct{ mean, lo, hi float64 }

func statsOf(runs []*Run, f func(*Run) float64) stats {
	s := stats{lo: math.Inf(1), hi: math.Inf(-1)}
	n := 0
	for _, r := range runs {
		v := f(r)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		s.mean += v
		s.lo, s.hi = math.Min(s.lo, v), math.Max(s.hi, v)
		n++
	}
	if n == 0 {
		return stats{math.NaN(), math.NaN(), math.NaN()}
	}
	s.mean /= float64(n)
	return s
}

func meanOf(runs []*Run, f func(*Run) float64) float64 { return statsOf(runs, f).mean }

// stdOf is the sample standard deviation of the finite values (NaN below
// two).
func stdOf(runs []*Run, f func(*Run) float64) float64 {
	m := meanOf(runs, f)
	var ss float64
	n := 0
	for _, r := range runs {
		if v := f(r); !math.IsNaN(v) && !math.IsInf(v, 0) {
			ss += (v - m) * (v - m)
			n++
		}
	}
	if n < 2 {
		return math.NaN()
	}
	return math.Sqrt(ss / float64(n-1))
}

// curve is a learning curve aggregated over seeds.
type curve struct {
	x, mean, lo, hi []float64
	n               int // runs
}

// aggregate aligns the runs' metrics by step and takes the mean, min and
// max of y over the runs at each step. A run that ended earlier (early stop
// at the target accuracy) carries its last value forward, so the mean does
// not jump when it drops out. y returns false where a line has no value
// (eval metrics exist only at eval steps).
func aggregate(runs []*Run, x func(train.Metrics) float64, y func(train.Metrics) (float64, bool)) curve {
	type pt struct{ x, y float64 }
	series := make([]map[int]pt, 0, len(runs))
	steps := map[int]bool{}
	last := make([]int, 0, len(runs))
	for _, r := range runs {
		m := map[int]pt{}
		lastStep := -1
		for _, line := range r.Metrics {
			v, ok := y(line)
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			m[line.Step] = pt{x(line), v}
			steps[line.Step] = true
			lastStep = max(lastStep, line.Step)
		}
		if len(m) > 0 {
			series = append(series, m)
			last = append(last, lastStep)
		}
	}
	c := curve{n: len(series)}
	order := sortedInts(steps)
	for _, s := range order {
		var sx, sy float64
		var nx, ny int
		lo, hi := math.Inf(1), math.Inf(-1)
		for i, m := range series {
			p, ok := m[s]
			if ok {
				sx += p.x
				nx++
			} else if s > last[i] {
				p = m[last[i]]
			} else {
				continue
			}
			sy += p.y
			ny++
			lo, hi = math.Min(lo, p.y), math.Max(hi, p.y)
		}
		if nx == 0 || ny == 0 {
			continue
		}
		c.x = append(c.x, sx/float64(nx))
		c.mean = append(c.mean, sy/float64(ny))
		c.lo = append(c.lo, lo)
		c.hi = append(c.hi, hi)
	}
	return c
}

func sortedInts(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// numericValues returns the distinct values of key among runs, sorted, if
// every run that has the key has a number there; ok is false otherwise.
func numericValues(runs []*Run, key string) (vals []float64, ok bool) {
	seen := map[float64]bool{}
	for _, r := range runs {
		v, has := r.Setting(key)
		if !has {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		seen[f] = true
	}
	for f := range seen {
		vals = append(vals, f)
	}
	slices.Sort(vals)
	return vals, len(vals) > 0
}

// distinctValues lists the values of key among runs (those that have it).
func distinctValues(runs []*Run, key string) ([]string, bool) {
	seen := map[string]bool{}
	for _, r := range runs {
		if v, ok := r.Setting(key); ok {
			seen[v] = true
		}
	}
	return sortedKeys(seen), len(seen) > 0
}

// settingFloat is a run's numeric value of key (NaN if absent or not a
// number).
func settingFloat(r *Run, key string) float64 {
	v, ok := r.Setting(key)
	if !ok {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// powersOfTwo reports whether all values are positive integer powers of
// two: such an axis is drawn in log 2.
func powersOfTwo(vals []float64) bool {
	for _, v := range vals {
		if v <= 0 {
			return false
		}
		if fr, _ := math.Frexp(v); fr != 0.5 {
			return false
		}
	}
	return len(vals) > 0
}
