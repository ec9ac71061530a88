package tests

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// k8sObject is the part of a Kubernetes manifest the checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec struct {
				InitContainers []k8sContainer `yaml:"initContainers"`
				Containers     []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []any `yaml:"volumeClaimTemplates"`
		Ports                []struct {
			Port     int    `yaml:"port"`
			Protocol string `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sEnvFrom struct {
	SecretRef    *struct{ Name string } `yaml:"secretRef"`
	ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
}

type k8sContainer struct {
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom         []k8sEnvFrom `yaml:"envFrom"`
	SecurityContext struct {
		Privileged bool `yaml:"privileged"`
	} `yaml:"securityContext"`
}

// TestKubernetesManifests parses every document in contrib/kubernetes and
// checks that they fit together: the daemon is a one-replica StatefulSet
// with a volume claim, S3 credentials and the token come from Secrets that
// exist, the Service exposes the API on TCP, and workers run 'strata
// worker --server URL --token T' privileged.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("../contrib/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	objs := map[string]k8sObject{} // kind/name
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(false)
		for i := 0; ; i++ {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: document %d lacks apiVersion, kind or metadata.name: %+v", f, i, o)
			}
			if o.Kind != "Namespace" && o.Metadata.Namespace != "strata" {
				t.Errorf("%s: %s %s in namespace %q, want strata", f, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
			}
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	need := func(key string) k8sObject {
		t.Helper()
		o, ok := objs[key]
		if !ok {
			t.Fatalf("no %s in contrib/kubernetes", key)
		}
		return o
	}
	s3 := need("Secret/strata-s3")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if _, ok := s3.StringData[k]; !ok {
			t.Errorf("Secret strata-s3 has no %s", k)
		}
	}
	if _, ok := need("Secret/strata-token").StringData["token"]; !ok {
		t.Error("Secret strata-token has no token")
	}
	cm := need("ConfigMap/strata")
	if !strings.HasPrefix(cm.Data["STRATA_STORE"], "s3://") {
		t.Errorf("ConfigMap strata: STRATA_STORE = %q, want s3://BUCKET/PREFIX", cm.Data["STRATA_STORE"])
	}
	svc := need("Service/strata")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 7070 || svc.Spec.Ports[0].Protocol != "TCP" {
		t.Errorf("Service strata ports = %+v, want TCP 7070", svc.Spec.Ports)
	}

	ss := need("StatefulSet/strata")
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 || len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Errorf("StatefulSet strata: replicas %v, %d volume claims; want 1 and 1", ss.Spec.Replicas, len(ss.Spec.VolumeClaimTemplates))
	}
	d := ss.Spec.Template.Spec.Containers[0]
	up := strings.Join(d.Args, " ")
	for _, want := range []string{"strata up", "--listen 0.0.0.0:7070", "--store", "--data /var/lib/strata"} {
		if !strings.Contains(up, want) {
			t.Errorf("daemon command %q lacks %q", up, want)
		}
	}
	if !slices.ContainsFunc(d.EnvFrom, func(e k8sEnvFrom) bool {
		return e.SecretRef != nil && e.SecretRef.Name == "strata-s3"
	}) {
		t.Error("the daemon does not take its S3 credentials from Secret strata-s3")
	}
	if init := ss.Spec.Template.Spec.InitContainers; len(init) != 1 || !strings.Contains(strings.Join(init[0].Command, " "), "/var/lib/strata/token") {
		t.Errorf("the daemon's init container does not put the token in DATA/token: %+v", init)
	}

	w := need("Deployment/strata-worker").Spec.Template.Spec.Containers[0]
	cmd := strings.Join(w.Args, " ")
	for _, want := range []string{"strata worker", "--server http://strata.strata.svc:7070", "--dir", "--slots"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("worker command %q lacks %q", cmd, want)
		}
	}
	// The token comes from $STRATA_TOKEN, never the command line (ps).
	if strings.Contains(cmd, "--token") {
		t.Errorf("worker command %q shows the token on its command line", cmd)
	}
	if !w.SecurityContext.Privileged {
		t.Error("workers run containerd and FUSE: they must be privileged")
	}
	if len(w.Env) == 0 || w.Env[0].Name != "STRATA_TOKEN" || w.Env[0].ValueFrom.SecretKeyRef.Name != "strata-token" {
		t.Errorf("worker token env = %+v, want STRATA_TOKEN from Secret strata-token", w.Env)
	}
}
