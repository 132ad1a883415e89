package gpukernels

import (
	"fmt"
	"regexp"
	"strings"
)

// The parameter lists of a family's kernels, read from its .cu source, so
// that a launch whose Go argument list disagrees with the kernel it calls
// fails with both lists named instead of handing the kernel garbage. The
// reader knows just enough of the preprocessor for this package's sources:
// object-like macros (the *_ARGS lists) and function-like macros that
// define kernels (FAST_ATTN(D) with ## pasting).

var (
	defineRE   = regexp.MustCompile(`(?m)^#define[ \t]+([A-Za-z_]\w*)(\([^)]*\))?[ \t]*((?:.*\\\n)*.*)$`)
	kernelRE   = regexp.MustCompile(`extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\(`)
	identRE    = regexp.MustCompile(`[A-Za-z_]\w*`)
	invocation = regexp.MustCompile(`(?m)^([A-Z_][A-Z0-9_]*)\(([^()]*)\)\s*$`)
)

type macro struct {
	params []string // nil: object-like
	body   string
}

// kernelParams returns each extern "C" kernel of src with its parameters
// as written ("const real* q", "i64 n"), in order.
func kernelParams(src string) (map[string][]string, error) {
	macros := map[string]macro{}
	for _, m := range defineRE.FindAllStringSubmatch(src, -1) {
		body := strings.ReplaceAll(m[3], "\\\n", " ")
		mc := macro{body: body}
		if m[2] != "" {
			mc.params = []string{}
			for _, p := range strings.Split(strings.Trim(m[2], "()"), ",") {
				mc.params = append(mc.params, strings.TrimSpace(p))
			}
		}
		macros[m[1]] = mc
	}
	// Kernels defined by function-like macros, one per invocation.
	text := defineRE.ReplaceAllString(src, "")
	text = invocation.ReplaceAllStringFunc(text, func(call string) string {
		m := invocation.FindStringSubmatch(call)
		mc, ok := macros[m[1]]
		if !ok || mc.params == nil || !strings.Contains(mc.body, `extern "C"`) {
			return call
		}
		args := strings.Split(m[2], ",")
		if len(args) != len(mc.params) {
			return call
		}
		body := mc.body
		for i, p := range mc.params {
			arg := strings.TrimSpace(args[i])
			body = strings.ReplaceAll(body, "##"+p, arg)
			body = regexp.MustCompile(`\b`+regexp.QuoteMeta(p)+`\b`).ReplaceAllString(body, arg)
		}
		return body
	})
	out := map[string][]string{}
	for _, loc := range kernelRE.FindAllStringSubmatchIndex(text, -1) {
		name := text[loc[2]:loc[3]]
		list, err := balanced(text[loc[1]:])
		if err != nil {
			return nil, fmt.Errorf("kernel %s: %w", name, err)
		}
		list = expandObjectMacros(list, macros)
		var params []string
		for _, p := range strings.Split(list, ",") {
			if p = strings.Join(strings.Fields(p), " "); p != "" {
				params = append(params, p)
			}
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("kernel %s is defined twice", name)
		}
		out[name] = params
	}
	return out, nil
}

// balanced returns s up to the ')' that closes an already opened '('.
func balanced(s string) (string, error) {
	depth := 1
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return s[:i], nil
			}
		}
	}
	return "", fmt.Errorf("unbalanced parameter list")
}

// expandObjectMacros replaces object-like macro names in s by their bodies
// until none is left.
func expandObjectMacros(s string, macros map[string]macro) string {
	for range 8 {
		changed := false
		s = identRE.ReplaceAllStringFunc(s, func(id string) string {
			if m, ok := macros[id]; ok && m.params == nil {
				changed = true
				return m.body
			}
			return id
		})
		if !changed {
			break
		}
	}
	return s
}

// checkArgs panics when a launch passes a number of 8-byte arguments that
// is not the kernel's parameter count.
func checkArgs(op string, k *kernel, n int) {
	if k.params != nil && len(k.params) != n {
		panic(fmt.Sprintf("gpukernels.%s: kernel %s takes %d parameters (%s), the launch passes %d",
			op, k.name, len(k.params), strings.Join(k.params, ", "), n))
	}
}
