// Package chartcheck lints and renders Concord's Helm charts with helm's
// own Go packages (no helm binary), and checks what the rendered manifests
// promise a hospital: non-root pods with no privilege escalation and a
// read-only root, probes on /healthz and /readyz, resources on every
// container.
//
// Design choices: lint is strict (a warning fails, as in `helm lint
// --strict`); charts are linted and rendered with each values file in their
// ci/ folder, the chart-testing convention, since the defaults alone leave
// the required site identity and kit unset on purpose.
package chartcheck

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"sigs.k8s.io/yaml"
)

// Namespace the charts are rendered in.
const Namespace = "concord"

// Object is one rendered Kubernetes manifest.
type Object struct {
	Source string // template file
	Kind   string
	Name   string
	Doc    map[string]any
}

// Lint runs helm's linter on the chart in dir with vals; a warning is an
// error.
func Lint(dir string, vals map[string]any) error {
	l := action.NewLint()
	l.Strict, l.Namespace = true, Namespace
	res := l.Run([]string{dir}, vals)
	var msgs []string
	for _, m := range res.Messages {
		msgs = append(msgs, m.Error())
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("helm lint %s:\n  %s", dir, strings.Join(msgs, "\n  "))
	}
	return nil
}

// Render renders the chart in dir with vals as a first install of release
// "concord" and parses every manifest.
func Render(dir string, vals map[string]any) ([]Object, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		return nil, fmt.Errorf("chart %s: %w", dir, err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "concord", Namespace: Namespace, IsInstall: true, Revision: 1}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, fmt.Errorf("chart %s: values: %w", dir, err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", dir, err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Object
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		for i, doc := range bytes.Split([]byte(files[n]), []byte("\n---")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var m map[string]any
			if err := yaml.UnmarshalStrict(doc, &m); err != nil {
				return nil, fmt.Errorf("%s document %d: not valid YAML: %w\n%s", n, i+1, err, doc)
			}
			if m == nil {
				continue
			}
			kind, _ := m["kind"].(string)
			name, _ := dig(m, "metadata", "name").(string)
			if kind == "" || name == "" || m["apiVersion"] == nil {
				return nil, fmt.Errorf("%s document %d: no apiVersion, kind or metadata.name", n, i+1)
			}
			out = append(out, Object{Source: filepath.Base(n), Kind: kind, Name: name, Doc: m})
		}
	}
	return out, nil
}

// ValuesFile reads a values file.
func ValuesFile(path string) (map[string]any, error) {
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		return nil, fmt.Errorf("values %s: %w", path, err)
	}
	return v.AsMap(), nil
}

// CIValues lists the values files in the chart's ci/ folder.
func CIValues(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "ci", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("chart %s: no values file in ci/ to lint and render with", dir)
	}
	return files, nil
}

// Check returns every broken promise of the rendered objects: each pod
// runs as a non-root user without privilege escalation, on a read-only root,
// with resources on every container and HTTP probes on /healthz and /readyz
// on the Concord containers.
func Check(objs []Object) error {
	var errs []error
	pods := 0
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" && o.Kind != "DaemonSet" {
			continue
		}
		pods++
		where := o.Kind + " " + o.Name
		spec, _ := dig(o.Doc, "spec", "template", "spec").(map[string]any)
		if spec == nil {
			errs = append(errs, fmt.Errorf("%s: no pod spec", where))
			continue
		}
		if dig(spec, "securityContext", "runAsNonRoot") != true {
			errs = append(errs, fmt.Errorf("%s: pod securityContext.runAsNonRoot is not true", where))
		}
		if uid, ok := dig(spec, "securityContext", "runAsUser").(float64); !ok || uid == 0 {
			errs = append(errs, fmt.Errorf("%s: pod securityContext.runAsUser is not a non-zero UID", where))
		}
		containers, _ := spec["containers"].([]any)
		if len(containers) == 0 {
			errs = append(errs, fmt.Errorf("%s: no containers", where))
		}
		for _, c := range containers {
			cm, _ := c.(map[string]any)
			cw := fmt.Sprintf("%s container %v", where, cm["name"])
			if dig(cm, "securityContext", "allowPrivilegeEscalation") != false {
				errs = append(errs, fmt.Errorf("%s: allowPrivilegeEscalation is not false", cw))
			}
			if dig(cm, "securityContext", "readOnlyRootFilesystem") != true {
				errs = append(errs, fmt.Errorf("%s: readOnlyRootFilesystem is not true", cw))
			}
			if drop, _ := dig(cm, "securityContext", "capabilities", "drop").([]any); len(drop) != 1 || drop[0] != "ALL" {
				errs = append(errs, fmt.Errorf("%s: capabilities.drop is not [ALL]", cw))
			}
			if dig(cm, "resources", "requests") == nil || dig(cm, "resources", "limits") == nil {
				errs = append(errs, fmt.Errorf("%s: resources need requests and limits", cw))
			}
			if name, _ := cm["name"].(string); name == "coordinator" || name == "site-agent" {
				for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
					if got := dig(cm, probe, "httpGet", "path"); got != path {
						errs = append(errs, fmt.Errorf("%s: %s on %v, want httpGet %s", cw, probe, got, path))
					}
				}
			}
		}
	}
	if pods == 0 {
		errs = append(errs, errors.New("no workload rendered"))
	}
	return errors.Join(errs...)
}

// Kinds counts the rendered objects by kind.
func Kinds(objs []Object) map[string]int {
	k := map[string]int{}
	for _, o := range objs {
		k[o.Kind]++
	}
	return k
}

// Find returns the object of kind whose name ends with suffix, or nil.
func Find(objs []Object, kind, suffix string) *Object {
	for i := range objs {
		if objs[i].Kind == kind && strings.HasSuffix(objs[i].Name, suffix) {
			return &objs[i]
		}
	}
	return nil
}

func dig(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}
