package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// The deployment files (deploy/README.md) and the repository's root, from
// this package's directory.
const (
	deployRoot           = "../.."
	deployUnit           = deployRoot + "/deploy/systemd/trustlog-relay.service"
	deployEnvExample     = deployRoot + "/deploy/systemd/relay.env.example"
	deployConfigExample  = deployRoot + "/deploy/systemd/relay.yaml"
	deployContainerfile  = deployRoot + "/deploy/container/Containerfile"
	deployKubernetes     = deployRoot + "/deploy/kubernetes/relay.yaml"
	deployKubernetesJob  = deployRoot + "/deploy/kubernetes/migrate-job.yaml"
	deployKubernetesKeys = deployRoot + "/deploy/kubernetes/secret.example.yaml"
	deployInstalledPath  = "/usr/local/bin/trustlog"
	deployMetricsPort    = "9464"
	deployEnvFile        = "/etc/trustlog/relay.env"
	deployConfigFilePath = "/etc/trustlog/relay.yaml"
)

// TestDeploySystemdUnit: the unit runs `trustlog relay` with flags the
// relay has, hardened (a dynamic user, a read-only system, no new
// privileges), restarted on failure but not after a configuration error
// (exit 2), given longer to stop than the relay takes to drain, with its
// secrets from an environment file whose example sets only variables
// trustlog reads and a configuration file the relay accepts; and, where
// systemd-analyze exists, systemd finds nothing wrong with it.
func TestDeploySystemdUnit(t *testing.T) {
	t.Parallel()
	unit := readUnit(t, deployUnit)
	svc := unit["Service"]
	require.NotNil(t, svc, "a [Service] section")
	for key, want := range map[string]string{
		"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes",
		"PrivateTmp": "yes", "Restart": "on-failure", "EnvironmentFile": deployEnvFile, "KillSignal": "SIGTERM",
		"CapabilityBoundingSet": "",
	} {
		assert.Equal(t, []string{want}, svc[key], "[Service] %s", key)
	}
	assert.Equal(t, []string{"multi-user.target"}, unit["Install"]["WantedBy"])
	assert.Equal(t, []string{strconv.Itoa(exitUsage)}, svc["RestartPreventExitStatus"],
		"a configuration error (exit 2) is not restarted")
	require.Len(t, svc["TimeoutStopSec"], 1)
	stop, err := time.ParseDuration(svc["TimeoutStopSec"][0])
	require.NoError(t, err)
	assert.Greater(t, stop, core.ShutdownTimeoutDefault, "systemd waits longer than the relay drains")

	// The environment: known variables only, the configuration file.
	env := map[string]string{}
	for _, e := range svc["Environment"] {
		k, v, ok := strings.Cut(e, "=")
		require.True(t, ok, e)
		env[k] = v
	}
	assert.Equal(t, map[string]string{configEnv: deployConfigFilePath}, env)

	// ExecStart is `trustlog relay` with real flags of the relay.
	require.Len(t, svc["ExecStart"], 1)
	execStart := strings.Fields(svc["ExecStart"][0])
	require.Equal(t, deployInstalledPath, execStart[0])
	args := slices.Clone(execStart[1:])
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "%H", "relay-host-1") // systemd's host name specifier
	}
	cmd := relayArgs(t, args)
	assert.Equal(t, "relay-host-1", cmd.Flags().Lookup("node").Value.String())
	assert.Equal(t, ":"+deployMetricsPort, cmd.Flags().Lookup("metrics-addr").Value.String())

	// The examples of the environment file and of the configuration file.
	vars := readEnvExample(t, deployEnvExample)
	assert.Contains(t, vars, "TRUSTLOG_STORE")
	assert.Contains(t, vars, "TRUSTLOG_SINK")
	assert.NotEqual(t, "memory", core.Scheme(vars["TRUSTLOG_SINK"]), "a sink that outlives the relay")
	runRelayConfig(t, deployConfigExample, args)

	// systemd's own check, on a copy that starts a binary that exists.
	analyze, err := exec.LookPath("systemd-analyze")
	if errors.Is(err, exec.ErrNotFound) {
		t.Log("systemd-analyze not found: the unit was checked by parsing only")
		return
	}
	require.NoError(t, err)
	self, err := os.Executable()
	require.NoError(t, err)
	b, err := os.ReadFile(deployUnit)
	require.NoError(t, err)
	copyPath := filepath.Join(t.TempDir(), "trustlog-relay.service")
	require.NoError(t, os.WriteFile(copyPath, bytes.ReplaceAll(b, []byte(deployInstalledPath), []byte(self)), 0o600))
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify: %s", out)
	for _, l := range strings.Split(string(out), "\n") {
		assert.NotContains(t, l, "trustlog-relay.service", "systemd-analyze verify has something to say") // unknown keys are only warnings
	}
}

// TestDeployContainerBuild: the Containerfile builds a static binary with
// CGO_ENABLED=0 and -trimpath (its build line, run here as written, gives
// a binary that runs and links nothing), copies it into a distroless
// image that runs it as a non-root user, and runs `trustlog relay` with
// the metrics port exposed; it has no HEALTHCHECK (no shell to run one:
// the orchestrator probes /healthz and /readyz instead). A long scenario
// (TRUSTLOG_FULL=1): a -trimpath build shares nothing with the test's own
// build cache, so on a fresh machine it compiles everything again.
func TestDeployContainerBuild(t *testing.T) {
	testenv.Long(t)
	t.Parallel()
	stages := readContainerfile(t, deployContainerfile)
	require.Len(t, stages, 2, "a build stage and a runtime stage")
	build, runtime := stages[0], stages[1]
	assert.Regexp(t, `^(docker\.io/library/)?golang:1\.26 AS build$`, build.from)
	assert.Regexp(t, `^gcr\.io/distroless/static(-debian\d+)?:nonroot$`, runtime.from)

	var line []string
	for _, run := range build.all("RUN") {
		if f := shellFields(t, run); slices.Contains(f, "go") && slices.Contains(f, "build") {
			require.Nil(t, line, "one go build line")
			line = f
		}
	}
	require.NotNil(t, line, "a RUN go build line")
	var env []string
	for len(line) > 0 && strings.Contains(line[0], "=") {
		env, line = append(env, line[0]), line[1:]
	}
	assert.Contains(t, env, "CGO_ENABLED=0")
	require.GreaterOrEqual(t, len(line), 2)
	require.Equal(t, []string{"go", "build"}, line[:2])
	assert.Contains(t, line, "-trimpath")
	o := slices.Index(line, "-o")
	require.Positive(t, o, "an -o flag")
	require.Less(t, o+1, len(line))
	built := line[o+1]
	assert.Equal(t, "./cmd/trustlog", line[len(line)-1])

	// The runtime stage runs that binary, as a user that is not root.
	require.Equal(t, []string{"--from=build " + built + " " + deployInstalledPath}, runtime.all("COPY"))
	user := runtime.last("USER")
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	require.NoError(t, err, "a numeric user (Kubernetes' runAsNonRoot can check it): %q", user)
	assert.Positive(t, n)
	assert.Equal(t, `["`+deployInstalledPath+`"]`, runtime.last("ENTRYPOINT"))
	assert.Equal(t, deployMetricsPort, runtime.last("EXPOSE"))
	assert.Empty(t, runtime.all("HEALTHCHECK"), "distroless has no shell to run a health check with")
	var cmdArgs []string
	require.NoError(t, yaml.Unmarshal([]byte(runtime.last("CMD")), &cmdArgs), "CMD in exec form")
	c := relayArgs(t, cmdArgs)
	assert.Equal(t, ":"+deployMetricsPort, c.Flags().Lookup("metrics-addr").Value.String())

	// The build line, run as written (the output in a temporary
	// directory), from the repository's root, the image's build context.
	gobin, err := exec.LookPath("go")
	require.NoError(t, err, "go test puts go on the PATH")
	out := filepath.Join(t.TempDir(), "trustlog")
	args := slices.Clone(line[2:])
	args[o-1] = out
	cmd := exec.Command(gobin, append([]string{"build"}, args...)...)
	cmd.Dir = deployRoot
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s", cmd, b)

	b, err = exec.Command(out, "version").CombinedOutput()
	require.NoError(t, err, "%s", b)
	assert.Regexp(t, `^trustlog \S`, string(b))
	bi, err := buildinfo.ReadFile(out)
	require.NoError(t, err)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	assert.Equal(t, "0", settings["CGO_ENABLED"])
	assert.Equal(t, "true", settings["-trimpath"])
	f, err := elf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Empty(t, libs, "a static binary: distroless/static has no C library")
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary needs no dynamic loader")
	}
}

// TestDeployKubernetes: the manifests parse; the Deployment runs several
// relays with flags the relay has, the secrets from the example Secret's
// keys, the
// configuration from the ConfigMap (which the relay accepts), the ledger
// key from a Secret volume, and probes on the port --metrics-addr serves:
// liveness /healthz, readiness /readyz. A relay started with those very
// arguments answers 200 on both paths and on the scraped /metrics. The
// migration Job runs `trustlog migrate up` on the same store.
func TestDeployKubernetes(t *testing.T) {
	t.Parallel()
	docs := readKubernetes(t, deployKubernetes)
	secret := readKubernetes(t, deployKubernetesKeys).find(t, "Secret", "trustlog-relay")
	configMap := docs.find(t, "ConfigMap", "trustlog-relay")
	dep := docs.find(t, "Deployment", "trustlog-relay")
	pdb := docs.find(t, "PodDisruptionBudget", "trustlog-relay")

	replicas := dep.int(t, "spec", "replicas")
	assert.GreaterOrEqual(t, replicas, 2, "a fleet")
	assert.Less(t, pdb.int(t, "spec", "minAvailable"), replicas, "a node drain can go on")
	assert.Equal(t, "RollingUpdate", dep.str(t, "spec", "strategy", "type"))
	pod := dep.node(t, "spec", "template", "spec")
	grace := pod.int(t, "terminationGracePeriodSeconds")
	assert.Greater(t, time.Duration(grace)*time.Second, core.ShutdownTimeoutDefault, "Kubernetes waits longer than the relay drains")
	assert.Equal(t, true, pod.value(t, "securityContext", "runAsNonRoot"))
	user, _, _ := strings.Cut(readContainerfile(t, deployContainerfile)[1].last("USER"), ":")
	assert.Equal(t, user, strconv.Itoa(pod.int(t, "securityContext", "runAsUser")), "the image's user")
	containers := pod.list(t, "containers")
	require.Len(t, containers, 1)
	c := containers[0]

	// Arguments: `trustlog relay` with real flags; --node from the pod.
	var args []string
	for _, a := range c.list(t, "args") {
		args = append(args, a.str(t))
	}
	podEnv := map[string]kubeNode{}
	for _, e := range c.list(t, "env") {
		podEnv[e.str(t, "name")] = e
	}
	require.Contains(t, podEnv, "POD_NAME")
	assert.Equal(t, "metadata.name", podEnv["POD_NAME"].str(t, "valueFrom", "fieldRef", "fieldPath"))
	resolved := slices.Clone(args)
	for i, a := range resolved {
		resolved[i] = strings.ReplaceAll(a, "$(POD_NAME)", "trustlog-relay-7d9f-abcde") // as Kubernetes expands it
	}
	relay := relayArgs(t, resolved)
	assert.Equal(t, "trustlog-relay-7d9f-abcde", relay.Flags().Lookup("node").Value.String())
	_, port, err := net.SplitHostPort(relay.Flags().Lookup("metrics-addr").Value.String())
	require.NoError(t, err)

	// The environment: trustlog's variables only; secrets from the Secret.
	known := map[string]bool{configEnv: true, "POD_NAME": true}
	for _, m := range []map[string]string{envFlags, commandEnv} {
		for _, v := range m {
			known[v] = true
		}
	}
	for name := range podEnv {
		assert.True(t, known[name], "env %s is not a variable trustlog reads", name)
	}
	secretKeys := secret.node(t, "stringData")
	for _, name := range []string{"TRUSTLOG_STORE", "TRUSTLOG_SINK"} {
		require.Contains(t, podEnv, name)
		ref := podEnv[name].node(t, "valueFrom", "secretKeyRef")
		assert.Equal(t, "trustlog-relay", ref.str(t, "name"))
		assert.NotEmpty(t, secretKeys.str(t, ref.str(t, "key")), "the Secret has the key %s reads", name)
	}
	assert.NotEqual(t, "memory", core.Scheme(secretKeys.str(t, podEnv["TRUSTLOG_SINK"].str(t, "valueFrom", "secretKeyRef", "key"))))

	// Files: the configuration and the ledger key are where the
	// environment says, from the ConfigMap and the Secret.
	mounts := map[string]string{} // mount path → volume
	for _, m := range c.list(t, "volumeMounts") {
		mounts[m.str(t, "mountPath")] = m.str(t, "name")
		assert.Equal(t, true, m.value(t, "readOnly"))
	}
	volumes := map[string]kubeNode{}
	for _, v := range pod.list(t, "volumes") {
		volumes[v.str(t, "name")] = v
	}
	fileFrom := func(envName, kind string) string { // the key of the ConfigMap or Secret the file is
		t.Helper()
		path := podEnv[envName].str(t, "value")
		vol, ok := volumes[mounts[filepath.Dir(path)]]
		require.True(t, ok, "%s=%s: no volume mounted at %s", envName, path, filepath.Dir(path))
		src := vol.node(t, kind)
		for _, item := range src.list(t, "items") {
			if item.str(t, "path") == filepath.Base(path) {
				return item.str(t, "key")
			}
		}
		t.Fatalf("%s=%s: the volume has no item %s", envName, path, filepath.Base(path))
		return ""
	}
	assert.NotEmpty(t, secretKeys.str(t, fileFrom("TRUSTLOG_LEDGER_KEY_FILE", "secret")))
	config := configMap.node(t, "data").str(t, fileFrom(configEnv, "configMap"))
	configFile := filepath.Join(t.TempDir(), "relay.yaml")
	require.NoError(t, os.WriteFile(configFile, []byte(config), 0o600))

	// Ports and probes.
	ports := c.list(t, "ports")
	require.Len(t, ports, 1)
	assert.Equal(t, port, strconv.Itoa(ports[0].int(t, "containerPort")), "the container port is --metrics-addr's")
	portName := ports[0].str(t, "name")
	probes := map[string]string{}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		get := c.node(t, probe, "httpGet")
		assert.Contains(t, []string{portName, port}, fmt.Sprint(get.value(t, "port")), "%s probes the metrics port", probe)
		probes[probe] = get.str(t, "path")
	}
	assert.Equal(t, map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"}, probes)
	timeout := c.int(t, "readinessProbe", "timeoutSeconds")
	assert.Greater(t, time.Duration(timeout)*time.Second, readyTimeout, "the probe waits for /readyz's own bound")
	ann := dep.node(t, "spec", "template", "metadata", "annotations")
	assert.Equal(t, port, ann.str(t, "prometheus.io/port"))
	scrape := ann.str(t, "prometheus.io/path")

	// A relay run with the Deployment's arguments and configuration (on
	// SQLite and the memory sink, on a free local port) serves those
	// paths.
	relayAddr := deployAddr(t)
	runArgs := slices.Clone(resolved)
	for i, a := range runArgs {
		if strings.HasPrefix(a, "--metrics-addr=") {
			runArgs[i] = "--metrics-addr=" + relayAddr
		}
	}
	store := "sqlite:" + filepath.Join(t.TempDir(), "k8s.db")
	code, _, errOut := cli(t, context.Background(), "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan string, 1)
	go func() {
		code, _, errOut := cli(t, ctx, "", append([]string{"--store", store, "--sink", "memory://", "--config", configFile}, runArgs...)...)
		done <- fmt.Sprintf("exit %d: %s", code, errOut)
	}()
	for _, path := range []string{probes["livenessProbe"], probes["readinessProbe"], scrape} {
		require.Eventually(t, func() bool { return deployGet("http://"+relayAddr+path) == http.StatusOK },
			time.Minute, 10*time.Millisecond, "GET %s", path)
	}
	assert.Equal(t, http.StatusNotFound, deployGet("http://"+relayAddr+"/nosuch"), "only the paths the relay serves answer 200")
	cancel()
	assert.Equal(t, "exit 0", strings.SplitN(<-done, ":", 2)[0])

	// The migration Job: `trustlog migrate up` on the relays' store.
	job := readKubernetes(t, deployKubernetesJob).find(t, "Job", "trustlog-migrate")
	jc := job.list(t, "spec", "template", "spec", "containers")
	require.Len(t, jc, 1)
	var jobArgs []string
	for _, a := range jc[0].list(t, "args") {
		jobArgs = append(jobArgs, a.str(t))
	}
	assert.Equal(t, []string{"migrate", "up"}, jobArgs)
	target, rest, err := (&app{}).rootCmd().Find(jobArgs)
	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.Equal(t, "trustlog migrate up", target.CommandPath())
	assert.Equal(t, c.str(t, "image"), jc[0].str(t, "image"), "the relays' image")
	for _, e := range jc[0].list(t, "env") {
		assert.True(t, known[e.str(t, "name")], e.str(t, "name"))
		if e.str(t, "name") == "TRUSTLOG_STORE" {
			assert.Equal(t, podEnv["TRUSTLOG_STORE"].node(t, "valueFrom"), e.node(t, "valueFrom"), "the relays' store")
		}
	}
}

// relayArgs parses args (after the binary's name) with the CLI's own
// command tree: they must name the relay command and only flags it has.
func relayArgs(t *testing.T, args []string) *cobra.Command {
	t.Helper()
	root := (&app{}).rootCmd()
	cmd, rest, err := root.Find(args)
	require.NoError(t, err, "%q", args)
	require.Equal(t, "trustlog relay", cmd.CommandPath(), "%q", args)
	require.NoError(t, cmd.ParseFlags(rest), "%q: flags of trustlog relay", args)
	assert.Empty(t, cmd.Flags().Args(), "%q: no arguments besides flags", args)
	return cmd
}

// runRelayConfig runs `trustlog relay` with args and the configuration
// file (on SQLite and the memory sink, --metrics-addr on a free local
// port, a context that has ended so that it stops at once): the file's
// keys and values are accepted and the relay exits 0.
func runRelayConfig(t *testing.T, config string, args []string) {
	t.Helper()
	args = slices.Clone(args)
	for i, a := range args {
		if a == "--metrics-addr" && i+1 < len(args) {
			args[i+1] = deployAddr(t)
		}
	}
	store := "sqlite:" + filepath.Join(t.TempDir(), "unit.db")
	code, _, errOut := cli(t, context.Background(), "", "--store", store, "migrate", "up")
	require.Equal(t, exitOK, code, errOut)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, _, errOut = cli(t, ctx, "", append([]string{"--store", store, "--sink", "memory://", "--config", config}, args...)...)
	assert.Equal(t, exitOK, code, "%s: %s", config, errOut)
}

// deployAddr returns a local address nothing listens on.
func deployAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// deployGet returns the status of a GET of url, or 0 when nothing answers
// (yet).
func deployGet(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// readUnit parses a systemd unit file: section → key → values in order
// (a key may be repeated). Continuation lines (a trailing backslash) are
// joined.
func readUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]map[string][]string{}
	var section, pending string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		if strings.HasPrefix(line, "[") {
			require.True(t, strings.HasSuffix(line, "]"), "%s:%d: %s", path, i+1, line)
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
			continue
		}
		require.NotEmpty(t, section, "%s:%d: a key before any section", path, i+1)
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s:%d: not key=value: %s", path, i+1, line)
		k = strings.TrimSpace(k)
		out[section][k] = append(out[section][k], strings.TrimSpace(v))
	}
	require.Empty(t, pending, "%s: a continuation line at the end", path)
	return out
}

// readEnvExample reads an EnvironmentFile example, where commented-out
// settings (#NAME=value) count too: every name must be one trustlog (or
// OpenTelemetry) reads.
func readEnvExample(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	known := map[string]bool{configEnv: true}
	for _, m := range []map[string]string{envFlags, commandEnv} {
		for _, v := range m {
			known[v] = true
		}
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		commented := strings.HasPrefix(line, "#")
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "#"), "=")
		if !ok || strings.ContainsAny(name, " \t") {
			require.True(t, commented || line == "", "%s: not NAME=value: %q", path, line)
			continue
		}
		assert.True(t, known[name] || strings.HasPrefix(name, "OTEL_"), "%s: %s is not a variable trustlog reads", path, name)
		if !commented {
			vars[name] = value
		}
	}
	require.NoError(t, sc.Err())
	return vars
}

// containerStage is one FROM … stage of a Containerfile: its base and its
// instructions in order.
type containerStage struct {
	from  string
	instr [][2]string // instruction (upper case), arguments
}

func (s containerStage) all(instr string) []string {
	var out []string
	for _, in := range s.instr {
		if in[0] == instr {
			out = append(out, in[1])
		}
	}
	return out
}

func (s containerStage) last(instr string) string {
	all := s.all(instr)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// readContainerfile parses a Containerfile into its stages: comments
// dropped, continuation lines joined.
func readContainerfile(t *testing.T, path string) []containerStage {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var stages []containerStage
	var pending string
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && pending == "" {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			pending += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		full := strings.TrimSpace(pending + trimmed)
		pending = ""
		if full == "" {
			continue
		}
		instr, args, _ := strings.Cut(full, " ")
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		if instr == "FROM" {
			stages = append(stages, containerStage{from: args})
			continue
		}
		require.NotEmpty(t, stages, "%s: %s before FROM", path, instr)
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{instr, args})
	}
	return stages
}

// shellFields splits a shell command line into words, honouring single
// and double quotes (no expansions: a build line needs none).
func shellFields(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	var word strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out, in = append(out, word.String()), false
				word.Reset()
			}
		default:
			require.False(t, strings.ContainsRune("$`\\;&|<>", r), "%q: shell syntax the test does not run", s)
			word.WriteRune(r)
			in = true
		}
	}
	require.Zero(t, quote, "%q: an unterminated quote", s)
	if in {
		out = append(out, word.String())
	}
	return out
}

// kubeNode is a decoded YAML value of a Kubernetes manifest.
type kubeNode struct{ v any }

// kubeDocs are the documents of a manifest file.
type kubeDocs []kubeNode

// readKubernetes decodes every document of a manifest file.
func readKubernetes(t *testing.T, path string) kubeDocs {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs kubeDocs
	for {
		var v map[string]any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, path)
		if v != nil {
			docs = append(docs, kubeNode{v})
		}
	}
	require.NotEmpty(t, docs, path)
	return docs
}

// find returns the one document of that kind and name.
func (d kubeDocs) find(t *testing.T, kind, name string) kubeNode {
	t.Helper()
	var found []kubeNode
	for _, doc := range d {
		if doc.str(t, "kind") == kind && doc.str(t, "metadata", "name") == name {
			found = append(found, doc)
		}
	}
	require.Len(t, found, 1, "one %s %s", kind, name)
	return found[0]
}

// node returns the value at path (mapping keys).
func (n kubeNode) node(t *testing.T, path ...string) kubeNode {
	t.Helper()
	v := n.v
	for i, k := range path {
		m, ok := v.(map[string]any)
		require.True(t, ok, "%s is not a mapping", strings.Join(path[:i], "."))
		v, ok = m[k]
		require.True(t, ok, "no %s", strings.Join(path[:i+1], "."))
	}
	return kubeNode{v}
}

func (n kubeNode) value(t *testing.T, path ...string) any {
	t.Helper()
	return n.node(t, path...).v
}

func (n kubeNode) str(t *testing.T, path ...string) string {
	t.Helper()
	s, ok := n.value(t, path...).(string)
	require.True(t, ok, "%s: not a string: %#v", strings.Join(path, "."), n.value(t, path...))
	return s
}

func (n kubeNode) int(t *testing.T, path ...string) int {
	t.Helper()
	i, ok := n.value(t, path...).(int)
	require.True(t, ok, "%s: not an integer: %#v", strings.Join(path, "."), n.value(t, path...))
	return i
}

func (n kubeNode) list(t *testing.T, path ...string) []kubeNode {
	t.Helper()
	l, ok := n.value(t, path...).([]any)
	require.True(t, ok, "%s: not a list", strings.Join(path, "."))
	out := make([]kubeNode, len(l))
	for i, v := range l {
		out[i] = kubeNode{v}
	}
	return out
}
