// Package buildinfo reads what the Go toolchain stamped into the binary.
package buildinfo

import "runtime/debug"

// Revision is the VCS revision the binary was built from, with "+modified"
// when the tree had uncommitted changes, or "unknown" when none was
// recorded (built outside a checkout, or with -buildvcs=false).
func Revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "+modified"
	}
	return rev
}
