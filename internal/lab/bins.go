package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Binaries the lab runs: the agent, the two CNI plugins and calicoctl
// (for the example's policies and for the user).
var binaries = []string{"calico-node", "calico", "calico-ipam", "calicoctl"}

// modulePath is the Go module the binaries are built from.
const modulePath = "github.com/calico-go/calico"

// ErrNoBinaries: the binaries are neither next to calico-lab nor buildable.
var ErrNoBinaries = errors.New("calico binaries not found")

// findBinaries returns the first directory holding every binary: dir
// (--bin-dir) if given, else the directory of the calico-lab executable.
func findBinaries(dir, self string) (string, bool) {
	if dir == "" {
		if self == "" {
			return "", false
		}
		dir = filepath.Dir(self)
	}
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return dir, false
		}
	}
	return dir, true
}

// sourceTree finds the module's source: the first directory, walking up
// from the working directory and then from the executable's, whose go.mod
// declares the module.
func sourceTree(self string) (string, bool) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if self != "" {
		starts = append(starts, filepath.Dir(self))
	}
	for _, d := range starts {
		for {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
				return d, true
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", false
}

// buildBinaries runs `go build` for every binary into out, from the source
// tree src, with the go command's output going to w.
func buildBinaries(ctx context.Context, src, out string, w io.Writer) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is not on PATH to build them: %w", ErrNoBinaries)
	}
	args := []string{"build", "-o", out + "/"}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build in %s: %w", src, err)
	}
	return nil
}
