// Package kubetest runs a real etcd and kube-apiserver on loopback for
// integration tests.
//
// client-go's fakes ignore paging, field selectors, server defaults such as
// creationTimestamp, RBAC and the Terminating phase of a namespace; only a
// real apiserver shows them. The binaries are built from the Go module proxy
// by hack/kubebin/build.sh into a cache outside the repository. Tests skip
// when the binaries are missing, unless LDREAPER_REQUIRE_KUBE=1 (set by CI),
// which turns the skip into a failure so a missing build step cannot pass
// silently.
//
// There is no controller-manager: a deleted namespace stays Terminating until
// the test finalizes it (DeleteNamespace with finalize), which makes that
// state easy to test deterministically.
package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Version is the Kubernetes release hack/kubebin/build.sh builds.
const Version = "v1.36.3"

// Environment variables the helper reads.
const (
	// EnvBinDir names the directory holding etcd, kube-apiserver and kubectl;
	// by default it is where build.sh caches them.
	EnvBinDir = "LDREAPER_KUBEBIN_DIR"
	// EnvRequire=1 fails tests that would otherwise skip for want of binaries.
	EnvRequire = "LDREAPER_REQUIRE_KUBE"
)

// Users of the token file. The restricted user has no role binding at all,
// so every request beyond discovery is forbidden until a test binds one.
const (
	AdminUser      = "kubetest-admin"
	RestrictedUser = "kubetest-restricted"
)

// readyTimeout bounds the wait for /readyz. The apiserver is ready in 2-4 s
// on an idle machine; the margin is for a CI box busy compiling.
const readyTimeout = 90 * time.Second

// Cluster is one etcd plus kube-apiserver, stopped when the test ends.
type Cluster struct {
	// URL is the apiserver's https://127.0.0.1:port.
	URL string
	// CAData is the PEM certificate that signed the apiserver's serving cert.
	CAData []byte
	// AdminToken authenticates AdminUser (group system:masters);
	// RestrictedToken authenticates RestrictedUser.
	AdminToken      string
	RestrictedToken string

	binDir string
	dir    string
	procs  []*process
}

// BinDir returns the directory with the binaries and whether all three are
// there.
func BinDir() (string, bool) {
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		cache := os.Getenv("LDREAPER_KUBEBIN_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", false
			}
			cache = filepath.Join(home, ".cache", "ldreaper-kubebin")
		}
		dir = filepath.Join(cache, Version)
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if info, err := os.Stat(filepath.Join(dir, name)); err != nil || info.IsDir() {
			return dir, false
		}
	}
	return dir, true
}

// Start launches etcd and kube-apiserver on free loopback ports with freshly
// generated certificates, keys and tokens, waits until the apiserver is
// ready, and stops both when the test ends. It skips the test when the
// binaries are missing (fails with LDREAPER_REQUIRE_KUBE=1).
func Start(t testing.TB) *Cluster {
	t.Helper()
	binDir, ok := BinDir()
	if !ok {
		msg := fmt.Sprintf("kube-apiserver, etcd and kubectl not found in %s; build them with hack/kubebin/build.sh or set %s", binDir, EnvBinDir)
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s (%s=1)", msg, EnvRequire)
		}
		t.Skip(msg)
	}
	c := &Cluster{binDir: binDir, dir: t.TempDir(), AdminToken: randomHex(t), RestrictedToken: randomHex(t)}
	t.Cleanup(func() { c.stop(t) })

	serving := c.writeCerts(t)
	c.writeServiceAccountKeys(t)
	tokens := fmt.Sprintf("%s,%s,%s-uid,\"system:masters\"\n%s,%s,%s-uid\n",
		c.AdminToken, AdminUser, AdminUser, c.RestrictedToken, RestrictedUser, RestrictedUser)
	c.writeFile(t, "tokens.csv", []byte(tokens))

	etcdClient, etcdPeer, apiPort := freePort(t), freePort(t), freePort(t)
	c.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.launch(t, "etcd",
		"--name=default", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--advertise-client-urls=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		"--initial-advertise-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		"--initial-cluster=default=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		"--unsafe-no-fsync=true", "--log-level=warn",
	)
	c.launch(t, "kube-apiserver",
		"--etcd-servers=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+serving.cert, "--tls-private-key-file="+serving.key,
		"--token-auth-file="+filepath.Join(c.dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer="+c.URL,
		"--service-account-key-file="+filepath.Join(c.dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(c.dir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		// No controller-manager creates ServiceAccount tokens or default
		// service accounts, so the admission plugin would reject pods; we
		// create none, but keep the apiserver from waiting on it.
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
	)
	c.waitReady(t)
	return c
}

// RESTConfig is a client config for the given token that verifies the
// apiserver's certificate.
func (c *Cluster) RESTConfig(token string) *rest.Config {
	return &rest.Config{Host: c.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData}}
}

// Kubeconfig writes a kubeconfig with two contexts, "admin" (current) and
// "restricted", and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(c.kubeconfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// KubeconfigForToken writes a kubeconfig whose only context uses token.
func (c *Cluster) KubeconfigForToken(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: user
  user:
    token: %s
contexts:
- name: user
  context: {cluster: kubetest, user: user}
current-context: user
`, c.URL, base64.StdEncoding.EncodeToString(c.CAData), token)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (c *Cluster) kubeconfig() string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
- name: restricted
  user:
    token: %s
contexts:
- name: admin
  context: {cluster: kubetest, user: admin}
- name: restricted
  context: {cluster: kubetest, user: restricted}
current-context: admin
`, c.URL, base64.StdEncoding.EncodeToString(c.CAData), c.AdminToken, c.RestrictedToken)
}

// Kubectl runs the kubectl built with the cluster as the admin user and
// returns its combined output.
func (c *Cluster) Kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	kubeconfig := filepath.Join(c.dir, "admin.kubeconfig")
	if _, err := os.Stat(kubeconfig); err != nil {
		c.writeFile(t, "admin.kubeconfig", []byte(c.kubeconfig()))
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(c.binDir, "kubectl"), append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Env = []string{"HOME=" + c.dir, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var (
	namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	secretsGVR    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// Dynamic is a dynamic client for the admin user.
func (c *Cluster) Dynamic(t testing.TB) *dynamic.DynamicClient {
	t.Helper()
	client, err := dynamic.NewForConfig(c.RESTConfig(c.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// CreateNamespace creates a namespace with labels and annotations as the
// admin user.
func (c *Cluster) CreateNamespace(t testing.TB, name string, labels, annotations map[string]string) {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace"}}
	ns.SetName(name)
	ns.SetLabels(labels)
	ns.SetAnnotations(annotations)
	if _, err := c.Dynamic(t).Resource(namespacesGVR).Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// DeleteNamespace deletes a namespace, which leaves it Terminating since no
// namespace controller runs. With finalize it then does the controller's
// last step, emptying spec.finalizers through the finalize subresource, so
// the namespace is gone when DeleteNamespace returns.
func (c *Cluster) DeleteNamespace(t testing.TB, name string, finalize bool) {
	t.Helper()
	namespaces := c.Dynamic(t).Resource(namespacesGVR)
	if err := namespaces.Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting namespace %s: %v", name, err)
	}
	if !finalize {
		return
	}
	ns, err := namespaces.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading namespace %s: %v", name, err)
	}
	if err := unstructured.SetNestedStringSlice(ns.Object, []string{}, "spec", "finalizers"); err != nil {
		t.Fatal(err)
	}
	if _, err := namespaces.Update(t.Context(), ns, metav1.UpdateOptions{}, "finalize"); err != nil {
		t.Fatalf("finalizing namespace %s: %v", name, err)
	}
	if _, err := namespaces.Get(t.Context(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s still there after finalizing (err %v)", name, err)
	}
}

// Secret returns the decoded data and the labels of a Secret, read as the
// admin user, or nil maps when it does not exist.
func (c *Cluster) Secret(t testing.TB, namespace, name string) (data map[string]string, labels map[string]string, resourceVersion string) {
	t.Helper()
	obj, err := c.Dynamic(t).Resource(secretsGVR).Namespace(namespace).Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, ""
	}
	if err != nil {
		t.Fatalf("reading secret %s/%s: %v", namespace, name, err)
	}
	encoded, _, err := unstructured.NestedStringMap(obj.Object, "data")
	if err != nil {
		t.Fatal(err)
	}
	data = map[string]string{}
	for k, v := range encoded {
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("secret %s/%s data %s: %v", namespace, name, k, err)
		}
		data[k] = string(raw)
	}
	return data, obj.GetLabels(), obj.GetResourceVersion()
}

// process is one started binary.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // set before exited closes
}

func (c *Cluster) launch(t testing.TB, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.binDir, name), args...)
	// A clean environment: etcd reads every ETCD_* variable as a flag.
	cmd.Env = []string{"HOME=" + c.dir}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	c.procs = append(c.procs, p)
}

// waitReady polls /readyz until it answers 200, a process dies or the
// timeout passes.
func (c *Cluster) waitReady(t testing.TB) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAData)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		for _, p := range c.procs {
			select {
			case <-p.exited:
				t.Fatalf("%s exited during startup (%v); log:\n%s", p.name, p.err, tail(p.log, 40))
			default:
			}
		}
		last = c.probeReady(ctx, client)
		if last == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kube-apiserver not ready after %s: %s; log:\n%s", readyTimeout, last, tail(filepath.Join(c.dir, "kube-apiserver.log"), 40))
		case <-tick.C:
		}
	}
}

// probeReady returns "" when /readyz says ok, else what it saw.
func (c *Cluster) probeReady(ctx context.Context, client *http.Client) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	return ""
}

// stop ends the apiserver before etcd, each with SIGTERM and then SIGKILL
// if it lingers, and shows their logs when the test failed.
func (c *Cluster) stop(t testing.TB) {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", p.name, tail(p.log, 30))
		}
	}
	c.procs = nil
}

type keyPair struct{ cert, key string }

// writeCerts writes a CA and a serving certificate for 127.0.0.1 signed by
// it, so clients verify TLS instead of skipping verification.
func (c *Cluster) writeCerts(t testing.TB) keyPair {
	t.Helper()
	caKey := newKey(t)
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubetest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	servingKey := newKey(t)
	servingTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	servingDER, err := x509.CreateCertificate(rand.Reader, servingTemplate, caCert, &servingKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	c.writeFile(t, "serving.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: servingDER}))
	c.writeFile(t, "serving.key", privateKeyPEM(t, servingKey))
	return keyPair{cert: filepath.Join(c.dir, "serving.crt"), key: filepath.Join(c.dir, "serving.key")}
}

// writeServiceAccountKeys writes the key pair the apiserver signs and
// verifies ServiceAccount tokens with (kubectl create token needs it).
func (c *Cluster) writeServiceAccountKeys(t testing.TB) {
	t.Helper()
	key := newKey(t)
	c.writeFile(t, "sa.key", privateKeyPEM(t, key))
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c.writeFile(t, "sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func privateKeyPEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func (c *Cluster) writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; on a test machine that is rare
// enough to accept.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
