package datastoretest

import (
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
	"syscall"
	"testing"
	"time"
)

// Options configure a private server. The zero value is a plain server
// with TLS off.
type Options struct {
	// Config is appended to the server's main configuration: lines of
	// postgresql.conf, or lines of my.cnf's [mysqld] section.
	Config []string
	// StartTimeout bounds each start; 0 means one minute.
	StartTimeout time.Duration
}

// Server is a private datastore server started for one test.
type Server struct {
	// Kind is "postgresql" or "mariadb".
	Kind string
	// Host, Port and Addr are where clients connect over TCP: 127.0.0.1
	// and a port that was free when the server was created.
	Host string
	Port int
	Addr string
	// Dir holds everything below; it is removed after the test.
	Dir string
	// DataDir is the server's data directory (PostgreSQL's pg_hba.conf
	// lives here).
	DataDir string
	// ConfigDir is included by the server's main configuration: files
	// ending in .conf (PostgreSQL) or .cnf (MariaDB) written here take
	// effect on the next reload or restart.
	ConfigDir string
	// SocketDir holds the server's Unix socket.
	SocketDir string
	// User is the system user the server runs as and whose files it reads.
	User string
	// AdminDSN connects as the superuser over the Unix socket, in the
	// driver's own syntax: a pgx keyword/value string, or a go-sql-driver
	// DSN.
	AdminDSN string
	// TCPDSN connects as a password-less (PostgreSQL, trust) or
	// password-protected (MariaDB) superuser over TCP, with no TLS
	// parameters: tests add their own (sslmode=..., tls=...).
	TCPDSN string
	// LogFile collects the server's output across restarts.
	LogFile string

	bin     string
	args    []string
	uid     int
	gid     int
	signal  syscall.Signal // clean shutdown
	timeout time.Duration
	ready   func(ctx context.Context) error
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Pid is the server's process id (PostgreSQL's postmaster), or 0 when it
// is not running.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Logs returns what the server has logged so far.
func (s *Server) Logs() string {
	b, _ := os.ReadFile(s.LogFile)
	return string(b)
}

// Restart stops the server cleanly and starts it again with the same
// directories and port, reading its configuration anew. It fails the test
// if the server does not come back.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop(t)
	s.start(t)
}

// start runs the server and waits until it accepts admin connections.
func (s *Server) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open server log: %v", err)
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "HOME=" + s.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)},
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.Kind, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(s.exited)

	timeout := s.timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err := s.ready(attempt)
		cancelAttempt()
		if err == nil {
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("%s exited during start: %v\n%s", s.Kind, cmd.ProcessState, s.Logs())
		case <-ctx.Done():
			s.stop(t)
			t.Fatalf("%s did not become ready in %v: %v\n%s", s.Kind, timeout, err, s.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop asks the server to shut down, and kills its process group if it
// has not within 20 seconds.
func (s *Server) stop(t testing.TB) {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	syscall.Kill(-pid, s.signal)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Logf("%s did not stop in 20s; killing process group %d", s.Kind, pid)
		syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	}
	// Whatever the server forked is gone with the group.
	syscall.Kill(-pid, syscall.SIGKILL)
	s.cmd = nil
}

// newServer makes the directories of a server run by sysUser: Dir under
// the system temporary directory (t.TempDir's parents are private to
// root, and the server's user must traverse the path), DataDir and
// SocketDir owned by sysUser, ConfigDir owned by the test's user and
// readable by everyone.
func newServer(t testing.TB, kind, sysUser, bin string) *Server {
	t.Helper()
	u, err := user.Lookup(sysUser)
	if err != nil {
		t.Fatalf("look up user %s: %v (the %s server package creates it)", sysUser, err, kind)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "reconciler-"+kind+"-")
	if err != nil {
		t.Fatalf("make server directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("make server directory: %v", err)
	}
	s := &Server{
		Kind:      kind,
		Host:      "127.0.0.1",
		Port:      freePort(t),
		Dir:       dir,
		DataDir:   filepath.Join(dir, "data"),
		ConfigDir: filepath.Join(dir, "conf"),
		SocketDir: filepath.Join(dir, "run"),
		LogFile:   filepath.Join(dir, "server.log"),
		User:      sysUser,
		bin:       bin,
		uid:       uid,
		gid:       gid,
	}
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	for _, d := range []struct {
		path  string
		mode  os.FileMode
		owned bool
	}{{s.DataDir, 0o700, true}, {s.SocketDir, 0o755, true}, {s.ConfigDir, 0o755, false}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			t.Fatalf("make server directory: %v", err)
		}
		if d.owned {
			if err := os.Chown(d.path, uid, gid); err != nil {
				t.Fatalf("make server directory: %v", err)
			}
		}
	}
	return s
}

// needBinary fails the test when path is missing, naming the package.
func needBinary(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no %s: install the Debian package %s (apt-get install %s)", path, pkg, pkg)
	}
}

// run runs a setup command as uid:gid and fails the test with its output.
func run(t testing.TB, uid, gid int, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C", "LC_ALL=C", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func appendFile(path string, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}
