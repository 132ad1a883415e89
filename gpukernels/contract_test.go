package gpukernels

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"seqbench/nn"
)

// These tests hold the Go↔CUDA contract on a machine without a GPU: every
// kernel the Go code names exists in its family's source, and every launch
// passes as many arguments as the kernel takes.

func familySignatures(t *testing.T, dt nn.DType) map[string]map[string][]string {
	t.Helper()
	sigs := map[string]map[string][]string{}
	for _, f := range families {
		src, err := kernelSource(f, dt)
		if err != nil {
			t.Fatal(err)
		}
		p, err := kernelParams(src)
		if err != nil {
			t.Fatalf("%s.cu: %v", f, err)
		}
		if len(p) == 0 {
			t.Fatalf("%s.cu: no kernels found", f)
		}
		sigs[f] = p
	}
	return sigs
}

// TestKernelParamsAreEightBytes checks the convention launch relies on:
// every parameter is a pointer, an i64, a double or a params struct.
func TestKernelParamsAreEightBytes(t *testing.T) {
	structs := map[string]bool{}
	for _, c := range contracts {
		for _, s := range c.structs {
			structs[s.name] = true
		}
	}
	for _, dt := range []nn.DType{nn.Float32, nn.Float64, nn.BFloat16} {
		n := 0
		for f, ks := range familySignatures(t, dt) {
			for k, ps := range ks {
				n++
				for _, p := range ps {
					words := strings.Fields(strings.ReplaceAll(p, "*", " * "))
					typ := words[len(words)-2]
					if typ != "*" && typ != "i64" && typ != "double" && !structs[typ] {
						t.Errorf("%s.cu %s: parameter %q is not 8 bytes (a pointer, i64, double or params struct)", f, k, p)
					}
				}
			}
		}
		if n < 60 {
			t.Errorf("%s: read %d kernels, fewer than the sources hold", dt, n)
		}
	}
}

func TestKernelParamsReadsMacros(t *testing.T) {
	src := `
#define K_ARGS real* out, \
    const real* x, i64 n
#define GEN(D) \
    extern "C" __global__ void __launch_bounds__(256) gen##D(float* o, i64 m) { body<D>(o, m); }
extern "C" __global__ void plain(K_ARGS) { }
extern "C" __global__ void __launch_bounds__(128) bounded(const __grid_constant__ ScanParams p) { }
GEN(64)
GEN(128)
`
	got, err := kernelParams(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"plain":   {"real* out", "const real* x", "i64 n"},
		"bounded": {"const __grid_constant__ ScanParams p"},
		"gen64":   {"float* o", "i64 m"}, "gen128": {"float* o", "i64 m"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// launchSite is one kernel launch in the Go sources. Its kernel is one of
// the candidates (a variable assigned by several be.fn calls: the launch
// must fit one of them); a candidate's pattern may match several template
// instances, which must all fit.
type launchSite struct {
	pos        string
	family     string // "": the kernel could not be followed
	candidates []*regexp.Regexp
	nargs      int // arguments after the shared-memory size; -1: not known statically
	isStruct   bool
}

// TestLaunchSitesMatchKernels reads the package's Go files and checks each
// launch it can follow against the kernels' parameter lists.
func TestLaunchSitesMatchKernels(t *testing.T) {
	sites := readLaunchSites(t, ".")
	for _, dt := range []nn.DType{nn.Float32, nn.Float64, nn.BFloat16} {
		problems, checked := checkSites(sites, familySignatures(t, dt))
		for _, p := range problems {
			t.Errorf("%s: %s", dt, p)
		}
		t.Logf("%s: %d launch sites, %d checked against their kernels' parameter lists", dt, len(sites), checked)
		if checked < 50 {
			t.Errorf("only %d launch sites could be checked", checked)
		}
	}
}

// TestLaunchSiteCheckCatchesMismatch breaks a kernel on purpose: one
// parameter dropped from adamw_each's list must be reported.
func TestLaunchSiteCheckCatchesMismatch(t *testing.T) {
	sites := readLaunchSites(t, ".")
	sigs := familySignatures(t, nn.Float32)
	ps := sigs["adamw"]["adamw_each"]
	sigs["adamw"]["adamw_each"] = ps[:len(ps)-1]
	problems, _ := checkSites(sites, sigs)
	if len(problems) != 1 || !strings.Contains(problems[0], "adamw_each") {
		t.Errorf("a dropped parameter of adamw_each gave %q, want one problem naming adamw_each", problems)
	}
	delete(sigs["rope"], "rope")
	if problems, _ = checkSites(sites, sigs); !slices.ContainsFunc(problems, func(p string) bool {
		return strings.Contains(p, "no kernel") && strings.Contains(p, "rope")
	}) {
		t.Errorf("a missing kernel rope gave %q", problems)
	}
}

func checkSites(sites []launchSite, sigs map[string]map[string][]string) (problems []string, checked int) {
	for _, s := range sites {
		if s.family == "" {
			continue
		}
		ks := sigs[s.family]
		if ks == nil {
			problems = append(problems, fmt.Sprintf("%s: no kernel family %q", s.pos, s.family))
			continue
		}
		var misfits []string
		fits := false
		for _, re := range s.candidates {
			matched, ok := 0, true
			for name, ps := range ks {
				if !re.MatchString(name) {
					continue
				}
				matched++
				switch {
				case s.isStruct && (len(ps) != 1 || !strings.Contains(ps[0], "Params")):
					misfits = append(misfits, fmt.Sprintf("%s takes (%s), the launch passes a params struct", name,
						strings.Join(ps, ", ")))
					ok = false
				case !s.isStruct && s.nargs >= 0 && s.nargs != len(ps):
					misfits = append(misfits, fmt.Sprintf("%s.cu %s takes %d parameters (%s), the launch passes %d",
						s.family, name, len(ps), strings.Join(ps, ", "), s.nargs))
					ok = false
				}
			}
			if matched == 0 {
				problems = append(problems, fmt.Sprintf("%s: no kernel %s in %s.cu", s.pos, re, s.family))
				ok = false
			}
			fits = fits || ok
		}
		switch {
		case !fits:
			for _, m := range misfits {
				problems = append(problems, s.pos+": "+m)
			}
		case s.isStruct || s.nargs >= 0:
			checked++
		}
	}
	return problems, checked
}

// readLaunchSites finds every be.launch, be.launchCooperative and
// be.launchStruct call in the package's non-test files and resolves, where
// the code allows, which kernels it launches (be.fn's family and name: a
// literal, a fmt.Sprintf pattern, a local assigned literals, or a
// parameter of a helper whose callers pass literals) and how many
// arguments it passes (explicit ones, or a helper's variadic arguments as
// its callers pass them).
func readLaunchSites(t *testing.T, dir string) []launchSite {
	t.Helper()
	fset := token.NewFileSet()
	paths, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, p, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	funcs := map[string]*ast.FuncDecl{}
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	r := &siteReader{fset: fset, funcs: funcs}
	var sites []launchSite
	for _, fd := range funcs {
		sites = append(sites, r.sitesOf(fd, nil)...)
	}
	return sites
}

type siteReader struct {
	fset  *token.FileSet
	funcs map[string]*ast.FuncDecl
}

// binding is what a helper's caller passed: string values for its string
// parameters, and the count of its variadic arguments.
type binding struct {
	strs  map[string][]string
	nvar  int
	vname string
}

func (r *siteReader) sitesOf(fd *ast.FuncDecl, b *binding) []launchSite {
	// A helper (a function with a string name parameter that launches)
	// is read at each of its call sites instead.
	if b == nil && r.isHelper(fd) {
		return nil
	}
	locals := literalAssignments(fd)
	var sites []launchSite
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if name := calleeName(c); name != "" && r.funcs[name] != nil && r.isHelper(r.funcs[name]) {
			if hb := r.bind(r.funcs[name], c, locals, b); hb != nil {
				sites = append(sites, r.sitesOf(r.funcs[name], hb)...)
			}
			return true
		}
		isStruct := isMethod(c, "launchStruct")
		if !isStruct && !isMethod(c, "launch") && !isMethod(c, "launchCooperative") || len(c.Args) < 5 {
			return true
		}
		pos := r.fset.Position(c.Pos()).String()
		var fnCalls []*ast.CallExpr
		switch k := c.Args[1].(type) {
		case *ast.CallExpr:
			fnCalls = append(fnCalls, k)
		case *ast.Ident:
			fnCalls = fnAssignments(fd, k)
		}
		if len(fnCalls) == 0 {
			sites = append(sites, launchSite{pos: pos})
			return true
		}
		nargs := len(c.Args) - 5
		if c.Ellipsis.IsValid() {
			nargs = -1
			if b != nil && b.vname != "" {
				if id, ok := c.Args[len(c.Args)-1].(*ast.Ident); ok && id.Name == b.vname && len(c.Args) == 6 {
					nargs = b.nvar
				}
			}
		}
		site := launchSite{pos: pos, nargs: nargs, isStruct: isStruct}
		for _, fc := range fnCalls {
			famArg, nameArg := fnArgs(fc)
			fam, ok := stringLit(famArg)
			names := nameValues(nameArg, locals, b)
			if !ok || len(names) == 0 || site.family != "" && site.family != fam {
				site.family = ""
				break
			}
			site.family = fam
			site.candidates = append(site.candidates, names...)
		}
		sites = append(sites, site)
		return true
	})
	return sites
}

// isHelper reports whether fd takes a string parameter that reaches be.fn.
func (r *siteReader) isHelper(fd *ast.FuncDecl) bool {
	strParams := map[string]bool{}
	for _, f := range fd.Type.Params.List {
		if id, ok := f.Type.(*ast.Ident); ok && id.Name == "string" {
			for _, n := range f.Names {
				if n.Name != "op" {
					strParams[n.Name] = true
				}
			}
		}
	}
	found := false
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok && isFnCall(c) {
			_, nameArg := fnArgs(c)
			ast.Inspect(nameArg, func(m ast.Node) bool {
				if id, ok := m.(*ast.Ident); ok && strParams[id.Name] {
					found = true
				}
				return true
			})
		}
		return true
	})
	return found
}

// bind returns what call passes to helper fd.
func (r *siteReader) bind(fd *ast.FuncDecl, call *ast.CallExpr, locals map[string][]string, outer *binding) *binding {
	b := &binding{strs: map[string][]string{}}
	i := 0
	for _, f := range fd.Type.Params.List {
		_, variadic := f.Type.(*ast.Ellipsis)
		for _, n := range f.Names {
			if variadic {
				b.vname = n.Name
				b.nvar = len(call.Args) - i
				if call.Ellipsis.IsValid() {
					b.nvar = -1
				}
				return b
			}
			if i >= len(call.Args) {
				return nil
			}
			if id, ok := f.Type.(*ast.Ident); ok && id.Name == "string" {
				b.strs[n.Name] = stringValues(call.Args[i], locals, outer)
			}
			i++
		}
	}
	return b
}

// literalAssignments maps each local assigned only string literals to them.
func literalAssignments(fd *ast.FuncDecl) map[string][]string {
	m := map[string][]string{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != len(as.Rhs) {
			return true
		}
		for i, l := range as.Lhs {
			if id, ok := l.(*ast.Ident); ok {
				if s, ok := stringLit(as.Rhs[i]); ok {
					m[id.Name] = append(m[id.Name], s)
				}
			}
		}
		return true
	})
	return m
}

// fnAssignments returns the be.fn calls assigned to the variable v names
// (every assignment to the same object, so a kernel chosen by a branch
// has several); none if any assignment to it is something else.
func fnAssignments(fd *ast.FuncDecl, v *ast.Ident) []*ast.CallExpr {
	if v.Obj == nil {
		return nil
	}
	var out []*ast.CallExpr
	other := false
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok {
			return true
		}
		for i, l := range as.Lhs {
			if id, ok := l.(*ast.Ident); ok && id.Obj == v.Obj {
				c, isCall := (*ast.CallExpr)(nil), false
				if len(as.Lhs) == len(as.Rhs) {
					c, isCall = as.Rhs[i].(*ast.CallExpr)
				}
				if isCall && isFnCall(c) {
					out = append(out, c)
				} else {
					other = true
				}
			}
		}
		return true
	})
	if other {
		return nil
	}
	return out
}

// stringValues are the strings e may hold: a literal, a local assigned
// literals, a bound helper parameter, or a concatenation of those.
func stringValues(e ast.Expr, locals map[string][]string, b *binding) []string {
	switch x := e.(type) {
	case *ast.BasicLit:
		if s, ok := stringLit(x); ok {
			return []string{s}
		}
	case *ast.Ident:
		if b != nil && b.strs[x.Name] != nil {
			return b.strs[x.Name]
		}
		return locals[x.Name]
	case *ast.BinaryExpr:
		if x.Op == token.ADD {
			var out []string
			for _, l := range stringValues(x.X, locals, b) {
				for _, r := range stringValues(x.Y, locals, b) {
					out = append(out, l+r)
				}
			}
			return out
		}
	}
	return nil
}

// nameValues are the kernel names a be.fn name argument may hold, as
// patterns (fmt.Sprintf verbs match any word).
func nameValues(e ast.Expr, locals map[string][]string, b *binding) []*regexp.Regexp {
	if c, ok := e.(*ast.CallExpr); ok && calleeName(c) == "Sprintf" && len(c.Args) > 0 {
		if f, ok := stringLit(c.Args[0]); ok {
			pat := regexp.MustCompile(`%[a-z]`).ReplaceAllString(regexp.QuoteMeta(f), `\w+`)
			return []*regexp.Regexp{regexp.MustCompile("^" + pat + "$")}
		}
		return nil
	}
	var out []*regexp.Regexp
	for _, s := range stringValues(e, locals, b) {
		out = append(out, regexp.MustCompile("^"+regexp.QuoteMeta(s)+"$"))
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

func isMethod(c *ast.CallExpr, name string) bool {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == name
}

func calleeName(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.SelectorExpr:
		return f.Sel.Name
	case *ast.Ident:
		return f.Name
	}
	return ""
}

func TestContractStructLayout(t *testing.T) {
	src := contractSource("selective_scan", nn.Float32)
	typ := reflect.TypeOf(scanParams{})
	var fields []string
	for i := range typ.NumField() {
		fields = append(fields, typ.Field(i).Name+";")
	}
	if got := regexp.MustCompile(`\w+;`).FindAllString(src[strings.Index(src, "struct ScanParams"):], typ.NumField()); !slices.Equal(got, fields) {
		t.Errorf("the emitted ScanParams has fields %v, Go's are %v", got, fields)
	}
	if !strings.Contains(src, fmt.Sprintf("sizeof(ScanParams) == %d", typ.Size())) {
		t.Errorf("the emitted ScanParams does not pin its size %d", typ.Size())
	}
	for _, c := range []string{"#define SCAN_THREADS 128", "#define SCAN_FWD_K 8", "#define SCAN_BWD_K 4",
		"#define SCAN_BWD_WARPS 8", "#define SCAN_CHUNK_BLOCKS 2", "#define SCAN_FWD_STATES 2", "#define SCAN_STATES_BLOCKS 3"} {
		if !strings.Contains(src, c) {
			t.Errorf("the contract lacks %q:\n%s", c, src)
		}
	}
	if c16 := contractSource("selective_scan", nn.BFloat16); !strings.Contains(c16, "#define SCAN_CHUNK_BLOCKS 2") {
		t.Errorf("bfloat16 contract: want SCAN_CHUNK_BLOCKS 2:\n%s", c16)
	}
	c64 := contractSource("selective_scan", nn.Float64)
	for _, c := range []string{"#define SCAN_FWD_K 8", "#define SCAN_BWD_K 4", "#define SCAN_CHUNK_BLOCKS 1", "#define SCAN_FWD_STATES 1",
		"#define SCAN_STATES_BLOCKS 1"} {
		if !strings.Contains(c64, c) {
			t.Errorf("float64 contract: want %q:\n%s", c, c64)
		}
	}
	p := scanParams{Out: 7, B: -3, N: 16, Nblk: 2}
	w := packStruct(p)
	if len(w) != typ.NumField() || w[0] != 7 || int64(w[23]) != -3 || w[26] != 16 || w[29] != 2 {
		t.Errorf("packStruct = %v", w)
	}
	type bad struct{ X int32 }
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "bad.X") {
			t.Errorf("a 4-byte field: recovered %v, want a panic naming bad.X", r)
		}
	}()
	structLayout(reflect.TypeOf(bad{}))
}

func TestCheckArgsNamesBothLists(t *testing.T) {
	k := &kernel{name: "k", params: []string{"real* out", "i64 n"}}
	checkArgs("Op", k, 2)
	defer func() {
		r := fmt.Sprint(recover())
		if !strings.Contains(r, "kernel k takes 2 parameters (real* out, i64 n), the launch passes 3") {
			t.Errorf("recovered %q", r)
		}
	}()
	checkArgs("Op", k, 3)
}

// isFnCall reports whether c looks a kernel up: be.fn(op, family, name) or
// be.fnAs(op, act, family, name).
func isFnCall(c *ast.CallExpr) bool {
	return isMethod(c, "fn") && len(c.Args) == 3 || isMethod(c, "fnAs") && len(c.Args) == 4
}

// fnArgs returns the family and name arguments of a kernel lookup.
func fnArgs(c *ast.CallExpr) (family, name ast.Expr) {
	n := len(c.Args)
	return c.Args[n-2], c.Args[n-1]
}
