package agent

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// procs starts children and waits for them. As PID 1 the agent must also
// reap orphans that are re-parented to it; a wait4(-1) loop would steal the
// exit statuses of our own children from per-pid waits, so in that mode a
// single reaper collects every status and hands ours to their waiters.
// Children are started with syscall.ForkExec, not os/exec, because
// os.Process.Wait (pidfd based) would fail once the reaper has reaped them.
type procs struct {
	reap    bool
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	sigc    chan os.Signal
	done    chan struct{}
}

func newProcs(reap bool) *procs {
	p := &procs{reap: reap, waiters: make(map[int]chan syscall.WaitStatus)}
	if reap {
		p.sigc = make(chan os.Signal, 1)
		p.done = make(chan struct{})
		signal.Notify(p.sigc, syscall.SIGCHLD)
		go p.reaper()
	}
	return p
}

func (p *procs) stop() {
	if p.reap {
		signal.Stop(p.sigc)
		close(p.done)
	}
}

func (p *procs) reaper() {
	p.reapAll() // orphans that exited before we listened for SIGCHLD
	for {
		select {
		case <-p.sigc:
			p.reapAll()
		case <-p.done:
			return
		}
	}
}

// reapAll collects every exited child; SIGCHLDs coalesce, so one signal may
// stand for many exits.
func (p *procs) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		p.mu.Lock()
		if ch, ok := p.waiters[pid]; ok {
			ch <- ws
			delete(p.waiters, pid)
		}
		p.mu.Unlock()
	}
}

// start forks and execs a child and returns a channel that receives its
// exit status once.
func (p *procs) start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	ch := make(chan syscall.WaitStatus, 1)
	if p.reap {
		// Hold the lock across the fork: the reaper may reap the child
		// before we register it, but it cannot look up the waiter until we
		// have.
		p.mu.Lock()
		defer p.mu.Unlock()
		pid, err := syscall.ForkExec(path, argv, attr)
		if err != nil {
			return 0, nil, err
		}
		p.waiters[pid] = ch
		return pid, ch, nil
	}
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
		ch <- ws
	}()
	return pid, ch, nil
}
