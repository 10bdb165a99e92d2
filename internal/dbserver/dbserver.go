// Package dbserver runs a private PostgreSQL or MariaDB server for one
// test: its own data directory and port on 127.0.0.1, so the test may stop
// and restart it (a database outage) without disturbing the shared servers
// other tests use. It needs the server binaries installed (initdb and
// pg_ctl of PostgreSQL; mariadb-install-db and mariadbd).
package dbserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running private database server.
type Server struct {
	// URL is the trustlog store URL of its database.
	URL  string
	Kind string
	dir  string
	port int
	t    testing.TB
	run  func() error
	stop func() error
	// alive reports why the server is not running (nil while it runs).
	alive func() error
}

// Alive returns nil while the server runs, and otherwise an error with
// the end of its log: a test waiting on the database can fail at once
// when the server died (a crash, not a restart) instead of at its
// deadline.
func (s *Server) Alive() error {
	err := s.alive()
	if err == nil {
		return nil
	}
	log := filepath.Join(s.dir, "pg.log")
	if s.Kind == "mariadb" {
		log = filepath.Join(s.dir, "mariadb.log")
	}
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lines = lines[max(0, len(lines)-40):]
	return fmt.Errorf("%s on port %d: %v; the end of %s:\n%s", s.Kind, s.port, err, log, strings.Join(lines, "\n"))
}

// Start starts a private server of the kind "postgres" or "mariadb" and
// stops it when t ends.
func Start(t testing.TB, kind string) *Server {
	t.Helper()
	// Not t.TempDir(): its parent is private to this user, and PostgreSQL
	// runs as another.
	dir, err := os.MkdirTemp("", "trustlog-dbserver-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{Kind: kind, dir: dir, port: freePort(t), t: t}
	switch kind {
	case "postgres":
		err = s.initPostgres()
	case "mariadb":
		err = s.initMariaDB()
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err == nil {
		err = s.Start()
	}
	if err != nil {
		t.Fatalf("dbserver: %s: %v", kind, err)
	}
	t.Cleanup(func() { s.Stop() })
	if kind == "mariadb" {
		out, err := exec.Command("mariadb", "--no-defaults", "-h127.0.0.1", "-P"+strconv.Itoa(s.port), "-uroot",
			"-e", "CREATE DATABASE IF NOT EXISTS trustlog").CombinedOutput()
		if err != nil {
			t.Fatalf("dbserver: create database: %v: %s", err, out)
		}
	}
	return s
}

// Restart stops the server (a fast shutdown: open transactions are cut
// off) and starts it again on the same port and data.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// Stop stops the server; it is idempotent.
func (s *Server) Stop() error { return s.stop() }

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() error {
	if err := s.run(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s.Kind == "mariadb" {
			if err := s.Alive(); err != nil {
				return err
			}
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second)
		if err == nil {
			c.Close()
			if s.Kind == "mariadb" && exec.Command("mariadb-admin", "--no-defaults", "-h127.0.0.1",
				"-P"+strconv.Itoa(s.port), "-uroot", "ping").Run() != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s on port %d did not come up", s.Kind, s.port)
}

func (s *Server) initPostgres() error {
	bin, err := pgBin()
	if err != nil {
		return err
	}
	data := filepath.Join(s.dir, "pg")
	asPostgres, err := runAs(s.dir, "postgres")
	if err != nil {
		return err
	}
	if out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", data, "--auth=trust", "-U", "postgres").CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	ctl := filepath.Join(bin, "pg_ctl")
	running := false
	s.run = func() error {
		out, err := asPostgres(ctl, "-D", data, "-w", "-l", filepath.Join(s.dir, "pg.log"), "-o",
			fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on", s.port, s.dir), "start").CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_ctl start: %v: %s", err, out)
		}
		running = true
		return nil
	}
	s.alive = func() error {
		if !running {
			return errors.New("stopped")
		}
		if out, err := asPostgres(ctl, "-D", data, "status").CombinedOutput(); err != nil {
			return fmt.Errorf("pg_ctl status: %v: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}
	s.stop = func() error {
		if !running {
			return nil
		}
		running = false
		if out, err := asPostgres(ctl, "-D", data, "-w", "-m", "fast", "stop").CombinedOutput(); err != nil {
			return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
		}
		return nil
	}
	return nil
}

func (s *Server) initMariaDB() error {
	data := filepath.Join(s.dir, "data")
	u := currentUser()
	if out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user="+u,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-install-db: %v: %s", err, out)
	}
	s.URL = fmt.Sprintf("mysql://root@127.0.0.1:%d/trustlog", s.port)
	var cmd *exec.Cmd
	var exited chan struct{} // closed when cmd has exited; waitErr is then set
	var waitErr error
	s.run = func() error {
		log, err := os.OpenFile(filepath.Join(s.dir, "mariadb.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cmd = exec.Command("mariadbd", "--no-defaults", "--datadir="+data, "--port="+strconv.Itoa(s.port),
			"--bind-address=127.0.0.1", "--socket="+filepath.Join(s.dir, "m.sock"), "--pid-file="+filepath.Join(s.dir, "m.pid"),
			"--user="+u, "--skip-log-bin", "--innodb-buffer-pool-size=128M")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return err
		}
		c, done := cmd, make(chan struct{})
		exited = done
		go func() { waitErr = c.Wait(); close(done) }()
		return nil
	}
	s.alive = func() error {
		if cmd == nil {
			return errors.New("stopped")
		}
		select {
		case <-exited:
			return fmt.Errorf("mariadbd exited: %v", waitErr)
		default:
			return nil
		}
	}
	s.stop = func() error {
		if cmd == nil {
			return nil
		}
		c, done := cmd, exited
		cmd = nil
		exec.Command("mariadb-admin", "--no-defaults", "-h127.0.0.1", "-P"+strconv.Itoa(s.port), "-uroot", "shutdown").Run()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			c.Process.Kill()
			<-done
		}
		return nil
	}
	return nil
}

// Available reports whether the binaries for kind are installed.
func Available(kind string) error {
	switch kind {
	case "postgres":
		_, err := pgBin()
		return err
	case "mariadb":
		for _, b := range []string{"mariadb-install-db", "mariadbd", "mariadb-admin", "mariadb"} {
			if _, err := exec.LookPath(b); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q", kind)
}

func pgBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("no PostgreSQL initdb found")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// runAs returns a command maker that runs as the given user when the
// process is root (PostgreSQL refuses to run as root), and chowns dir.
func runAs(dir, name string) (func(string, ...string) *exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return func(p string, args ...string) *exec.Cmd { return exec.Command(p, args...) }, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root needs the %s user: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return func(p string, args ...string) *exec.Cmd {
		return exec.Command("runuser", append([]string{"-u", name, "--", p}, args...)...)
	}, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitReady waits until ping succeeds or ctx ends.
func WaitReady(ctx context.Context, ping func(context.Context) error) error {
	for {
		if err := ping(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
