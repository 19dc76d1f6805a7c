// Package process runs the real programs an emulated machine runs (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok): each in a process group of its own, its
// output appended to a log file, killed with the emulator (Pdeathsig).
package process

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is one running program.
type Process struct {
	Name    string
	Log     string
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
}

// Start runs argv with its output appended to logPath.
func Start(name, logPath string, argv []string) (*Process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer log.Close() //nolint:errcheck

	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	if err := cmd.Start(); err != nil {
		return nil, err
	}

	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{}), started: time.Now()}

	go func() {
		cmd.Wait() //nolint:errcheck
		close(p.done)
	}()

	return p, nil
}

// Started is when the program started.
func (p *Process) Started() time.Time { return p.started }

// Pid is the program's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exit describes how the program ended ("" while it runs).
func (p *Process) Exit() string {
	if p.Alive() || p.cmd.ProcessState == nil {
		return ""
	}

	return p.cmd.ProcessState.String()
}

// Alive reports whether the program still runs.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM to the group, then SIGKILL after 10 s.
func (p *Process) Stop() {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return
		}

		select {
		case <-p.done:
			return
		case <-time.After(10 * time.Second):
		}
	}
}

// Tail is the end of the program's log, for error messages.
func (p *Process) Tail() string {
	raw, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}

	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")

	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
