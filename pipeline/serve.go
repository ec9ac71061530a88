package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/agent"
	"github.com/strata-data/strata/pipeline/datum"
)

// A service pipeline runs its command as one long-lived process on the
// host's network instead of once per datum. Each new set of input heads
// is a job like any other (with an output commit and provenance), which
// restarts the process over a view of all of the inputs' datums.

// service is the running process of a service pipeline.
type service struct {
	job    string
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *service) stop() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
}

// serviceDatum is the one datum a service sees: the files of every datum
// of its inputs.
const serviceDatum = "service"

// runService (re)starts the service over job j's inputs and finishes the
// job once the process is up.
func (c *Controller) runService(r *runner, p *pipelineRec, j *jobRec) {
	fail := func(err error) {
		if r.ctx.Err() != nil || finished(j.State) {
			c.log.Error("service", "pipeline", p.Name, "job", j.ID, "err", err)
			return
		}
		if ferr := c.finishJob(p, j, api.JobFailure, err.Error(), nil); ferr != nil {
			c.log.Error("finish job", "pipeline", p.Name, "job", j.ID, "err", ferr)
		}
	}
	if len(p.Spec.Transform.Cmd) == 0 {
		fail(errors.New("a service needs transform.cmd"))
		return
	}
	restart := finished(j.State) // the daemon restarted under a running service
	if !restart {
		now := time.Now().UTC()
		j.Started, j.State = &now, api.JobRunning
	}
	commits := datum.Inputs{}
	for _, in := range j.Inputs {
		cm, err := c.db.Commit(in.Repo, in.Commit)
		if err != nil {
			fail(err)
			return
		}
		commits[in.Name] = cm
	}
	ds, err := datum.List(r.ctx, c.db, effectiveInput(p.Name, &p.Spec.Input), commits)
	if err != nil {
		fail(fmt.Errorf("list datums: %w", err))
		return
	}
	all := &datum.Datum{ID: serviceDatum}
	seen := map[string]bool{}
	for _, d := range ds {
		for _, f := range d.Files {
			if k := f.Input + "\x00" + f.Path; !seen[k] {
				seen[k] = true
				all.Files = append(all.Files, f)
			}
		}
	}
	view, err := datum.View(c.db, all)
	if err != nil {
		fail(err)
		return
	}
	r.svc.stop()
	r.svc = nil
	pl, err := r.ensurePool(r.ctx, p)
	if err != nil {
		fail(err)
		return
	}
	w := pl.workers[0]
	rb := c.db.NewRecordBatch()
	rb.Pin(pinSlot+w.name, view)
	rb.Commit(false)
	c.slots.Set(w.name, view)

	logPath := c.logPath(p.Name, j.ID, serviceDatum)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		fail(err)
		return
	}
	env := []string{"STRATA_JOB_ID=" + j.ID, "STRATA_PIPELINE=" + p.Name, "PORT=" + strconv.Itoa(p.Spec.Service.Port)}
	for _, in := range j.Inputs {
		env = append(env, in.Name+"=/pfs/"+in.Name, in.Name+"_COMMIT="+in.Commit)
	}
	var stdin []byte
	if len(p.Spec.Transform.Stdin) > 0 {
		stdin = []byte(strings.Join(p.Spec.Transform.Stdin, "\n") + "\n")
	}
	req := agent.Request{Args: p.Spec.Transform.Cmd, Env: env, Dir: p.Spec.Transform.WorkingDir,
		User: p.Spec.Transform.User, Stdin: stdin}
	ctx, cancel := context.WithCancel(r.ctx)
	svc := &service{job: j.ID, cancel: cancel, done: make(chan struct{})}
	r.svc = svc
	started := make(chan error, 1)
	go func() {
		defer close(svc.done)
		lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			started <- err // the only send so far
			return
		}
		defer lf.Close()
		lw := &syncWriter{w: lf}
		backoff := time.Second
		for first := true; ; first = false {
			fmt.Fprintf(lw, "--- service %s starting at %s\n", p.Name, time.Now().UTC().Format(time.RFC3339))
			t0 := time.Now()
			if first {
				// Up if it has not exited within a moment.
				go func() {
					select {
					case <-time.After(500 * time.Millisecond):
						select {
						case started <- nil:
						default:
						}
					case <-ctx.Done():
					}
				}()
			}
			res, err := w.w.Exec(ctx, req, lw, lw)
			if ctx.Err() != nil {
				return
			}
			why := res.String()
			if err != nil {
				why = err.Error()
			}
			fmt.Fprintf(lw, "--- service %s exited: %s; restarting in %s\n", p.Name, why, backoff)
			if first && time.Since(t0) < 500*time.Millisecond {
				select {
				case started <- fmt.Errorf("the service exited at once: %s (logs: strata logs --pipeline %s)", why, p.Name):
				default:
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
		}
	}()
	select {
	case err = <-started:
	case <-r.ctx.Done():
		return
	}
	if err != nil {
		r.svc.stop()
		r.svc = nil
		if !restart {
			fail(err)
		}
		return
	}
	if restart {
		c.log.Info("service running again", "pipeline", p.Name, "job", j.ID, "port", p.Spec.Service.Port)
		return
	}
	j.Total, j.Processed = 1, 1
	root := meta.EmptyTree
	if err := c.finishJob(p, j, api.JobSuccess, "", &root); err != nil {
		c.log.Error("finish job", "pipeline", p.Name, "job", j.ID, "err", err)
	}
	c.log.Info("service running", "pipeline", p.Name, "job", j.ID, "port", p.Spec.Service.Port)
}
