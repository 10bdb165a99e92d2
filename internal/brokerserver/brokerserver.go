// Package brokerserver runs a private Apache Kafka or Apache Pulsar broker
// for one test: its own data directory and ports on 127.0.0.1, so the test
// may stop and restart it (a broker outage) without disturbing the shared
// brokers other tests use. The broker is the real one, started by
// `scripts/services.sh exec` from the artifacts that script resolves from
// Maven Central (the first start of each kind downloads them into its
// cache; Java and Maven must be installed).
package brokerserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running private broker.
type Server struct {
	// Kind is "kafka" or "pulsar".
	Kind string
	// Addr is the Kafka broker's host:port, or the Pulsar service URL
	// (pulsar://127.0.0.1:port).
	Addr string
	// Admin is Pulsar's admin REST API (http://127.0.0.1:port); empty for
	// Kafka.
	Admin string

	t     testing.TB
	dir   string
	ports []int // passed to services.sh exec; ports[0] is the client port
	ready func(ctx context.Context) error

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
	// starts counts the broker processes started.
	starts int
}

// script is scripts/services.sh of this source tree.
func script() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("brokerserver: cannot locate the source tree")
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "services.sh")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// Available reports whether a private broker can be started here: the
// script, Java and Maven.
func Available() error {
	if _, err := script(); err != nil {
		return err
	}
	for _, b := range []string{"java", "mvn", "bash"} {
		if _, err := exec.LookPath(b); err != nil {
			return err
		}
	}
	return nil
}

// Start starts a private broker of kind "kafka" or "pulsar", waits until
// it answers ready (which the caller supplies: a client round trip), and
// stops it when t ends.
func Start(t testing.TB, kind string, ready func(ctx context.Context, s *Server) error) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "trustlog-broker-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{Kind: kind, t: t, dir: dir}
	switch kind {
	case "kafka": // client, controller
		s.ports = freePorts(t, 2)
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.ports[0])
	case "pulsar": // binary protocol, admin HTTP (the bookie takes a free port itself)
		s.ports = freePorts(t, 2)
		s.Addr = "pulsar://127.0.0.1:" + strconv.Itoa(s.ports[0])
		s.Admin = "http://127.0.0.1:" + strconv.Itoa(s.ports[1])
	default:
		t.Fatalf("brokerserver: unknown kind %q", kind)
	}
	s.ready = func(ctx context.Context) error { return ready(ctx, s) }
	t.Cleanup(func() { s.Stop() })
	if err := s.Start(); err != nil {
		t.Fatalf("brokerserver: %v", err)
	}
	return s
}

// Start starts the broker (again, on the same ports and data) and waits
// until it answers. A broker that does not answer within startWait is
// stopped and started again, startTries times in all: a Pulsar broker
// restarted on its data can stay stuck loading topics ("Failed to load
// topic within timeout" from its own health check, apache/pulsar#7443),
// and restarting it is the known way out.
func (s *Server) Start() error {
	var err error
	for try := 1; try <= startTries; try++ {
		if err = s.start(); err == nil {
			return nil
		}
		if try < startTries {
			fmt.Fprintf(os.Stderr, "brokerserver: %s did not come up (try %d of %d), restarting it: %v\n", s.Kind, try, startTries, firstLine(err))
			s.Stop()
		}
	}
	return err
}

// startWait bounds one start's wait for the broker to answer; startTries
// is how many starts Start makes.
const (
	startWait  = 2 * time.Minute
	startTries = 3
)

func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// start starts the broker process once and waits until it answers, for
// at most startWait.
func (s *Server) start() error {
	sh, err := script()
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return nil
	}
	args := []string{sh, "exec", s.Kind, s.dir}
	for _, p := range s.ports {
		args = append(args, strconv.Itoa(p))
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "exec.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	cmd := exec.Command("bash", args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group (Stop signals the group); killed with this
	// process, so a test killed hard leaves no broker behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		s.mu.Unlock()
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.log = cmd, log
	s.starts++
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()
	var last error
	for {
		if last = s.ready(ctx); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it answered; see %s", s.Kind, s.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within %s (%v); %s", s.Kind, startWait, last, s.LogTail())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Stop stops the broker (SIGTERM to its process group, SIGKILL after 60
// s). It is idempotent.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	cmd := s.cmd
	s.cmd = nil
	defer s.log.Close()
	pgid := -cmd.Process.Pid
	syscall.Kill(pgid, syscall.SIGTERM)
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if syscall.Kill(pgid, 0) != nil {
			return nil
		}
	}
	syscall.Kill(pgid, syscall.SIGKILL)
	return nil
}

// Restart stops the broker and starts it again.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// LogTail returns the last lines of the broker's logs, for a failure
// message.
func (s *Server) LogTail() string {
	out := ""
	files, _ := filepath.Glob(filepath.Join(s.dir, "logs", "*.log"))
	for _, f := range append([]string{filepath.Join(s.dir, "exec.log")}, files...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		out += "\n== " + f + "\n" + string(b)
	}
	return out
}

func freePorts(t testing.TB, n int) []int {
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
