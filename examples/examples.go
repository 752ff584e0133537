// Package examples embeds the manifests of this directory so that tools can
// use them without a source tree: `calico-lab up --example three-tier` adds
// the workloads of three-tier/workloads.sh and applies its YAML files in
// name order. The files are meant to be read, and applied with plain
// `calicoctl apply -f`.
package examples

import "embed"

// FS holds quickstart.yaml and the three-tier walkthrough.
//
//go:embed quickstart.yaml three-tier
var FS embed.FS
