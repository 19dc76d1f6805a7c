package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is one real program an emulated node runs (etcd, kube-apiserver, ...), in a process
// group of its own so stopping it also stops anything it spawned.
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(name, logPath string, argv []string) (*process, error) {
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

	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}

	go func() {
		cmd.Wait() //nolint:errcheck
		close(p.done)
	}()

	return p, nil
}

func (p *process) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the group, then SIGKILL after 10 s.
func (p *process) stop() {
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

// tail is the end of the process' log, for error messages.
func (p *process) tail() string {
	raw, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}

	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")

	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
