// Package buildinfo carries the version stamped into every binary at link
// time (see the Makefile's LDFLAGS).
package buildinfo

// Set with -ldflags -X at build time; the defaults mark an unstamped build.
var (
	Version   = "dev"
	GitCommit = "unknown"
)
