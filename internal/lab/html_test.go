package lab

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium runs headless Chromium (Debian's chromium package) with args
// and a private profile, and returns its standard output. The test is
// skipped when Chromium is not installed, unless CALICO_TEST_CHROMIUM=1.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CALICO_TEST_CHROMIUM") == "1" {
			t.Fatalf("chromium is not installed (CALICO_TEST_CHROMIUM=1): %v", err)
		}
		t.Skip("chromium is not installed (apt-get install --no-install-recommends chromium)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

// TestMatrixHTMLInChromium loads the html matrix in headless Chromium:
// the DOM the browser builds has one coloured cell per pair, and the
// page renders to a screenshot.
func TestMatrixHTMLInChromium(t *testing.T) {
	var page bytes.Buffer
	if err := threeTierMatrix().WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "matrix.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := string(chromium(t, "--dump-dom", "file://"+file))
	for what, want := range map[string]int{`class="allowed"`: 3, `class="denied"`: 9, `class="self"`: 4, `<th class="row">`: 4} {
		if got := strings.Count(dom, what); got != want {
			t.Errorf("Chromium's DOM has %d %s, want %d", got, what, want)
		}
	}
	if !strings.Contains(dom, "Who reaches whom: TCP port 80") {
		t.Errorf("Chromium's DOM lacks the title:\n%s", dom)
	}
	shot := filepath.Join(t.TempDir(), "matrix.png")
	chromium(t, "--window-size=640,480", "--screenshot="+shot, "file://"+file)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The grid's colours are on the page: look for the allowed green and
	// the denied red among the pixels.
	var green, red bool
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			green = green || (r == 0x2e && g == 0x9b && bl == 0x4f)
			red = red || (r == 0xd6 && g == 0x45 && bl == 0x45)
		}
	}
	if !green || !red {
		t.Errorf("the screenshot lacks the grid's colours (green %v, red %v)", green, red)
	}
}
