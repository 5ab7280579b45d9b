package kubetest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBinDir(t *testing.T) {
	populated := func(t *testing.T, dir string, names ...string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T) (binDir, cache, home string)
		wantDir func(binDir, cache, home string) string
		wantOK  bool
	}{
		{
			name: "explicit directory with all three",
			setup: func(t *testing.T) (string, string, string) {
				return populated(t, t.TempDir(), "etcd", "kube-apiserver", "kubectl"), "", t.TempDir()
			},
			wantDir: func(binDir, _, _ string) string { return binDir },
			wantOK:  true,
		},
		{
			name: "explicit directory missing kubectl",
			setup: func(t *testing.T) (string, string, string) {
				return populated(t, t.TempDir(), "etcd", "kube-apiserver"), "", t.TempDir()
			},
			wantDir: func(binDir, _, _ string) string { return binDir },
		},
		{
			name: "build.sh's cache, keyed by version",
			setup: func(t *testing.T) (string, string, string) {
				cache := t.TempDir()
				populated(t, filepath.Join(cache, Version), "etcd", "kube-apiserver", "kubectl")
				return "", cache, t.TempDir()
			},
			wantDir: func(_, cache, _ string) string { return filepath.Join(cache, Version) },
			wantOK:  true,
		},
		{
			name: "a cache of another version does not count",
			setup: func(t *testing.T) (string, string, string) {
				cache := t.TempDir()
				populated(t, filepath.Join(cache, "v1.35.0"), "etcd", "kube-apiserver", "kubectl")
				return "", cache, t.TempDir()
			},
			wantDir: func(_, cache, _ string) string { return filepath.Join(cache, Version) },
		},
		{
			name: "the default cache under HOME",
			setup: func(t *testing.T) (string, string, string) {
				return "", "", t.TempDir()
			},
			wantDir: func(_, _, home string) string { return filepath.Join(home, ".cache", "ldreaper-kubebin", Version) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			binDir, cache, home := tt.setup(t)
			t.Setenv(EnvBinDir, binDir)
			t.Setenv("LDREAPER_KUBEBIN_CACHE", cache)
			t.Setenv("HOME", home)
			dir, ok := BinDir()
			if want := tt.wantDir(binDir, cache, home); dir != want || ok != tt.wantOK {
				t.Errorf("BinDir() = %q, %v; want %q, %v", dir, ok, want, tt.wantOK)
			}
		})
	}
}
