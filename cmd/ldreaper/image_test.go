package main

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// imageUID is the user the Dockerfile's final stage runs as (distroless
// "nonroot"); deploy/deploy_test.go holds the manifests to the same number.
const imageUID = 65532

// TestImageBuild does what the Dockerfile's build does, as far as a machine
// without a container engine can: it runs scripts/build-static.sh, the one
// command the Dockerfile runs, and checks that the binary is static (it
// must run on distroless/static, which has no libc and no dynamic loader),
// carries its version and no local paths, and runs as the image's non-root
// user with an empty environment and "/" as its working directory.
func TestImageBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binary; skipped with -short")
	}
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"scripts/build-static.sh /out/ldreaper",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532",
		`ENTRYPOINT ["/ldreaper"]`,
	} {
		if !strings.Contains(string(dockerfile), line) {
			t.Errorf("the Dockerfile no longer has %q; this test builds what it builds", line)
		}
	}

	// Not t.TempDir: its parent is private to the test's user, and the
	// binary must be reachable by the image's user.
	dir, err := os.MkdirTemp("", "ldreaper-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ldreaper")
	build := exec.CommandContext(t.Context(), "../../scripts/build-static.sh", bin, "1.2.3-test")
	// The script must force a static build whatever the caller's setting.
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-static.sh: %v\n%s", err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary imports libraries %v (%v)", libs, err)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: it was not built with -ldflags -s")
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// -trimpath keeps -ldflags out of the build info; "version" below shows
	// the -X, and the missing symbol table the -s.
	wantSettings := map[string]string{
		"CGO_ENABLED": "0",
		"-trimpath":   "true",
		"-buildmode":  "exe",
	}
	gotSettings := map[string]string{}
	for k := range wantSettings {
		gotSettings[k] = settings[k]
	}
	if diff := cmp.Diff(wantSettings, gotSettings); diff != "" {
		t.Errorf("build settings mismatch (-want +got):\n%s", diff)
	}
	for k := range settings {
		if strings.HasPrefix(k, "vcs.") {
			t.Errorf("build setting %s: the image build has no .git, so a local build must not stamp VCS data either", k)
		}
	}

	run := exec.CommandContext(t.Context(), bin, "version")
	run.Dir = "/"
	run.Env = []string{}
	if os.Geteuid() == 0 {
		// As setpriv --reuid=65532 --regid=65532 --clear-groups would.
		run.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: imageUID, Gid: imageUID, Groups: []uint32{}}}
	}
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("ldreaper version as uid %d: %v\n%s", imageUID, err, out)
	}
	if diff := cmp.Diff("ldreaper 1.2.3-test\n", string(out)); diff != "" {
		t.Errorf("ldreaper version output mismatch (-want +got):\n%s", diff)
	}
}
