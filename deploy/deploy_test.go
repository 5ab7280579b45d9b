package deploy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/ldreaper/ldreaper/internal/kubetest"
)

// The image the manifests name and the uid the Dockerfile runs as.
const (
	shippedImage = "ghcr.io/ldreaper/ldreaper:v0.1.0"
	imageUID     = 65532
)

// overlay is one kustomization users apply, and what it must render to.
type overlay struct {
	dir string
	// objects are the rendered objects as "Kind/name", sorted.
	objects []string
	// workloads are the ldreaper workloads, by "Kind/name".
	workloads map[string]workload
	image     string
}

// workload is what one ldreaper workload must run.
type workload struct {
	// args follow "--config <mounted config>".
	args []string
	// tokenSecret is the Secret mounted where token_file points.
	tokenSecret string
}

func overlays() []overlay {
	base := []string{
		"ClusterRole/ldreaper-namespace-reader", "ClusterRoleBinding/ldreaper-namespace-reader",
		"ConfigMap/ldreaper-config", "Deployment/ldreaper-redis", "NetworkPolicy/ldreaper-redis",
		"Service/ldreaper-redis", "ServiceAccount/ldreaper",
	}
	with := func(extra ...string) []string {
		all := slices.Concat(base, extra)
		slices.Sort(all)
		return all
	}
	daemon := workload{tokenSecret: "ldreaper-ld-token"}
	once := workload{args: []string{"--once", "--report", "json"}, tokenSecret: "ldreaper-ld-token"}
	audit := workload{args: []string{"--once", "--dry-run", "--report", "json"}, tokenSecret: "ldreaper-ld-reader-token"}
	return []overlay{
		{dir: "base", objects: with(), image: shippedImage},
		{
			dir:       "overlays/daemon",
			objects:   with("Deployment/ldreaper", "PodDisruptionBudget/ldreaper", "Service/ldreaper"),
			workloads: map[string]workload{"Deployment/ldreaper": daemon},
			image:     shippedImage,
		},
		{
			dir:       "overlays/cronjob",
			objects:   with("CronJob/ldreaper-once"),
			workloads: map[string]workload{"CronJob/ldreaper-once": once},
			image:     shippedImage,
		},
		{
			dir:       "overlays/audit",
			objects:   with("CronJob/ldreaper-audit"),
			workloads: map[string]workload{"CronJob/ldreaper-audit": audit},
			image:     shippedImage,
		},
		{
			dir:       "overlays/example",
			objects:   with("CronJob/ldreaper-audit", "Deployment/ldreaper", "PodDisruptionBudget/ldreaper", "Service/ldreaper"),
			workloads: map[string]workload{"Deployment/ldreaper": daemon, "CronJob/ldreaper-audit": audit},
			image:     "registry.example.com/platform/ldreaper:v0.1.0",
		},
	}
}

// object is the part of a rendered manifest the checks read. Spec carries
// the fields of every kind checked; yaml ignores the rest.
type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas          *int          `yaml:"replicas"`
		ConcurrencyPolicy string        `yaml:"concurrencyPolicy"`
		Ports             []servicePort `yaml:"ports"`
		Template          struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		JobTemplate struct {
			Spec struct {
				Template struct {
					Spec podSpec `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"jobTemplate"`
	} `yaml:"spec"`
}

func (o object) id() string { return o.Kind + "/" + o.Metadata.Name }

// pod is the object's pod template.
func (o object) pod() podSpec {
	if o.Kind == "CronJob" {
		return o.Spec.JobTemplate.Spec.Template.Spec
	}
	return o.Spec.Template.Spec
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	RestartPolicy                 string `yaml:"restartPolicy"`
	TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot   bool `yaml:"runAsNonRoot"`
		RunAsUser      int  `yaml:"runAsUser"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []volume    `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
}

// shippedConfig is the part of the mounted ldreaper.toml that the manifests
// must agree with. cmd/ldreaper/shipped_config_test.go validates the whole
// file with ldreaper's own loader.
type shippedConfig struct {
	LaunchDarkly struct {
		TokenFile string `toml:"token_file"`
	} `toml:"launchdarkly"`
	Reconcile struct {
		ShutdownTimeout string `toml:"shutdown_timeout"`
	} `toml:"reconcile"`
	Redis struct {
		URL string `toml:"url"`
	} `toml:"redis"`
	HTTP struct {
		Listen string `toml:"listen"`
	} `toml:"http"`
}

// kubectlBinary is the kubectl hack/kubebin/build.sh builds for
// internal/kubetest; the test skips without it unless LDREAPER_REQUIRE_KUBE=1.
func kubectlBinary(t *testing.T) string {
	t.Helper()
	dir, ok := kubetest.BinDir()
	if !ok {
		msg := "kubectl not found in " + dir + "; build it with hack/kubebin/build.sh or set " + kubetest.EnvBinDir
		if os.Getenv(kubetest.EnvRequire) == "1" {
			t.Fatalf("%s (%s=1)", msg, kubetest.EnvRequire)
		}
		t.Skip(msg)
	}
	return filepath.Join(dir, "kubectl")
}

func render(t *testing.T, kubectl, dir string) []object {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), kubectl, "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	var objects []object
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objects
		}
		if err != nil {
			t.Fatalf("decoding the output of kubectl kustomize %s: %v", dir, err)
		}
		objects = append(objects, o)
	}
}

// TestOverlaysRender renders every overlay and checks what users rely on:
// which objects they get, that the pods run as the image's non-root user on
// a read-only root filesystem without privilege escalation, and that the
// config, token, Redis address and HTTP port in the mounted ldreaper.toml
// match the manifests around it.
func TestOverlaysRender(t *testing.T) {
	kubectl := kubectlBinary(t)
	for _, ov := range overlays() {
		t.Run(ov.dir, func(t *testing.T) {
			objects := render(t, kubectl, ov.dir)
			byID := map[string]object{}
			var ids []string
			for _, o := range objects {
				byID[o.id()] = o
				ids = append(ids, o.id())
				clusterScoped := o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding"
				if !clusterScoped && o.Metadata.Namespace != "ldreaper" {
					t.Errorf("%s is in namespace %q, want ldreaper", o.id(), o.Metadata.Namespace)
				}
			}
			slices.Sort(ids)
			if diff := cmp.Diff(ov.objects, ids); diff != "" {
				t.Errorf("rendered objects mismatch (-want +got):\n%s", diff)
			}

			var cfg shippedConfig
			if _, err := toml.Decode(byID["ConfigMap/ldreaper-config"].Data["ldreaper.toml"], &cfg); err != nil {
				t.Fatalf("ConfigMap ldreaper-config, ldreaper.toml: %v", err)
			}
			checkRedis(t, cfg, byID)
			for id, want := range ov.workloads {
				o, ok := byID[id]
				if !ok {
					continue // reported by the object list above
				}
				checkWorkload(t, o, want, ov.image, cfg)
			}
			for _, o := range objects {
				if _, listed := ov.workloads[o.id()]; !listed && slices.ContainsFunc(o.pod().Containers, func(c container) bool { return c.Name == "ldreaper" }) {
					t.Errorf("%s runs ldreaper but the test does not check it", o.id())
				}
			}
			if _, ok := ov.workloads["Deployment/ldreaper"]; ok {
				checkDaemon(t, byID["Deployment/ldreaper"], byID["Service/ldreaper"], cfg)
			}
		})
	}
}

// checkWorkload checks one ldreaper pod template.
func checkWorkload(t *testing.T, o object, want workload, image string, cfg shippedConfig) {
	t.Helper()
	pod := o.pod()
	if pod.ServiceAccountName != "ldreaper" {
		t.Errorf("%s: serviceAccountName %q, want ldreaper", o.id(), pod.ServiceAccountName)
	}
	sc := pod.SecurityContext
	if !sc.RunAsNonRoot || sc.RunAsUser != imageUID || sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot, runAsUser %d, seccomp RuntimeDefault", o.id(), sc, imageUID)
	}
	if o.Kind == "CronJob" && pod.RestartPolicy != "Never" {
		t.Errorf("%s: restartPolicy %q, want Never (a failed run is a new pod, counted by the Job)", o.id(), pod.RestartPolicy)
	}
	if o.Kind == "CronJob" && o.Spec.ConcurrencyPolicy != "Forbid" {
		t.Errorf("%s: concurrencyPolicy %q, want Forbid", o.id(), o.Spec.ConcurrencyPolicy)
	}
	if len(pod.Containers) != 1 || pod.Containers[0].Name != "ldreaper" {
		t.Fatalf("%s: containers %+v, want one named ldreaper", o.id(), pod.Containers)
	}
	c := pod.Containers[0]
	if c.Image != image {
		t.Errorf("%s: image %q, want %q", o.id(), c.Image, image)
	}
	csc := c.SecurityContext
	escalation := csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation
	if escalation || !csc.ReadOnlyRootFilesystem || !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("%s: container may escalate privileges: %v, read-only root filesystem: %v, drops capabilities %v; want false, true, [ALL]",
			o.id(), escalation, csc.ReadOnlyRootFilesystem, csc.Capabilities.Drop)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("%s: resources %+v, want cpu and memory requests and a memory limit", o.id(), c.Resources)
	}

	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("%s: volume %s is mounted writable", o.id(), m.Name)
		}
		mounts[m.Name] = m.MountPath
	}
	configDir, tokenDir := "", ""
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil && v.ConfigMap.Name == "ldreaper-config":
			configDir = mounts[v.Name]
		case v.Secret != nil && v.Secret.SecretName == want.tokenSecret:
			tokenDir = mounts[v.Name]
			if len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "token" || v.Secret.Items[0].Path != path.Base(cfg.LaunchDarkly.TokenFile) {
				t.Errorf("%s: Secret %s items %+v, want key token at %s", o.id(), want.tokenSecret, v.Secret.Items, path.Base(cfg.LaunchDarkly.TokenFile))
			}
		}
	}
	if configDir == "" {
		t.Errorf("%s: ConfigMap ldreaper-config is not mounted", o.id())
	}
	if tokenDir == "" || tokenDir != path.Dir(cfg.LaunchDarkly.TokenFile) {
		t.Errorf("%s: Secret %s is mounted at %q, but token_file is %q", o.id(), want.tokenSecret, tokenDir, cfg.LaunchDarkly.TokenFile)
	}
	wantArgs := slices.Concat([]string{"--config", configDir + "/ldreaper.toml"}, want.args)
	if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
		t.Errorf("%s: args mismatch (-want +got):\n%s", o.id(), diff)
	}
}

// checkDaemon checks what only the long-running Deployment has: replicas,
// probes on the [http] port, the Service and the shutdown grace.
func checkDaemon(t *testing.T, d, svc object, cfg shippedConfig) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("Deployment/ldreaper: replicas %v, want 2", d.Spec.Replicas)
	}
	pod := d.pod()
	if len(pod.Containers) != 1 {
		return // reported by checkWorkload
	}
	c := pod.Containers[0]
	_, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		t.Fatalf("[http] listen %q: %v", cfg.HTTP.Listen, err)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || strconv.Itoa(c.Ports[0].ContainerPort) != port {
		t.Errorf("Deployment/ldreaper: ports %+v, want http on %s ([http] listen)", c.Ports, port)
	}
	for _, p := range []struct {
		name  string
		probe *probe
		path  string
	}{{"liveness", c.LivenessProbe, "/livez"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != "http" {
			t.Errorf("Deployment/ldreaper: %s probe %+v, want GET %s on port http", p.name, p.probe, p.path)
		}
	}
	shutdown, err := time.ParseDuration(cfg.Reconcile.ShutdownTimeout)
	if err != nil {
		t.Fatalf("[reconcile] shutdown_timeout %q: %v", cfg.Reconcile.ShutdownTimeout, err)
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace < shutdown+5*time.Second {
		t.Errorf("Deployment/ldreaper: terminationGracePeriodSeconds %v, want at least shutdown_timeout %v + 5s", grace, shutdown)
	}
	portNumber, _ := strconv.Atoi(port)
	if diff := cmp.Diff([]servicePort{{Name: "http", Port: portNumber, TargetPort: "http"}}, svc.Spec.Ports); diff != "" {
		t.Errorf("Service/ldreaper ports mismatch (-want +got):\n%s", diff)
	}
}

// checkRedis checks that [redis] url names the base's Redis Service.
func checkRedis(t *testing.T, cfg shippedConfig, byID map[string]object) {
	t.Helper()
	u, err := url.Parse(cfg.Redis.URL)
	if err != nil {
		t.Fatalf("[redis] url %q: %v", cfg.Redis.URL, err)
	}
	svc, ok := byID["Service/"+u.Hostname()]
	if !ok {
		t.Fatalf("[redis] url %q names no Service of the overlay", cfg.Redis.URL)
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p servicePort) bool { return strconv.Itoa(p.Port) == u.Port() }) {
		t.Errorf("[redis] url %q: Service %s has no port %s (ports %+v)", cfg.Redis.URL, u.Hostname(), u.Port(), svc.Spec.Ports)
	}
}

// TestManifestsServerDryRun sends every overlay and the one-off Job to a
// real kube-apiserver as a server-side dry run: schemas, defaulting and
// admission, including Pod Security "restricted", which the namespace asks
// to warn about. The apiserver runs no controllers, so nothing is scheduled.
func TestManifestsServerDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver; skipped with -short")
	}
	cluster := kubetest.Start(t)
	cluster.CreateNamespace(t, "ldreaper", map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}, nil)

	// The Pod Security check below can only fail if the apiserver reports
	// violations at all: show that it does for a pod template without a
	// securityContext.
	unrestricted := filepath.Join(t.TempDir(), "unrestricted.yaml")
	if err := os.WriteFile(unrestricted, []byte(unrestrictedDeployment), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cluster.Kubectl(t, "apply", "--dry-run=server", "-n", "ldreaper", "-f", unrestricted); !strings.Contains(out, "would violate PodSecurity") {
		t.Fatalf("the apiserver did not warn about an unrestricted pod template, so the check cannot work: %v\n%s", err, out)
	}

	runs := [][]string{{"create", "--dry-run=server", "-n", "ldreaper", "-f", "jobs/force-deletes.yaml"}}
	for _, ov := range overlays() {
		runs = append(runs, []string{"apply", "--dry-run=server", "-k", ov.dir})
	}
	for _, args := range runs {
		t.Run(args[len(args)-1], func(t *testing.T) {
			out, err := cluster.Kubectl(t, args...)
			if err != nil || !strings.Contains(out, "(server dry run)") {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if strings.Contains(out, "would violate PodSecurity") || strings.Contains(strings.ToLower(out), "warning") {
				t.Errorf("kubectl %s warned:\n%s", strings.Join(args, " "), out)
			}
		})
	}
	if out, err := cluster.Kubectl(t, "get", "deployments,cronjobs,jobs", "-n", "ldreaper", "-o", "name"); err != nil || out != "" {
		t.Errorf("a dry run created objects: %q (%v)", out, err)
	}
}

const unrestrictedDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: unrestricted
spec:
  selector:
    matchLabels: {app: unrestricted}
  template:
    metadata:
      labels: {app: unrestricted}
    spec:
      containers:
        - name: c
          image: busybox
`
