package siteagent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// errJobCancelled is the cause of a task's context when the coordinator
// cancels its job.
var errJobCancelled = errors.New("the coordinator cancelled the job")

// Bounds on a task from the coordinator. The coordinator validates what it
// sends; these keep a wrong or hostile one from exhausting the agent.
const (
	maxQueued     = 64
	maxIDLen      = 256     // task, job and blob names
	maxNonceLen   = 1 << 10 // bytes
	maxTaskPeers  = 4096    // key holders in a secure job
	maxTaskParams = 1 << 28 // model parameters (1 GiB of float32)
	maxBlobBytes  = 4 << 30 // any one download
)

// runningTask is the task the worker is running and how to stop it.
type runningTask struct {
	t      *pb.Task
	cancel context.CancelCauseFunc
}

// checkTask refuses a task the agent cannot safely run.
func checkTask(t *pb.Task) error {
	switch {
	case t.TaskId == "" || len(t.TaskId) > maxIDLen:
		return fmt.Errorf("task id of %d bytes (want 1 to %d)", len(t.TaskId), maxIDLen)
	case t.JobId == "" || len(t.JobId) > maxIDLen:
		return fmt.Errorf("job id of %d bytes (want 1 to %d)", len(t.JobId), maxIDLen)
	case len(t.InputBlob) > maxIDLen || len(t.KeySharesBlob) > maxIDLen || len(t.LayoutHash) > maxIDLen:
		return errors.New("a blob name or layout hash longer than the agent accepts")
	case len(t.Nonce) > maxNonceLen || len(t.CrpSeed) > maxNonceLen:
		return errors.New("a nonce or seed longer than the agent accepts")
	case len(t.Points) > maxTaskPeers || len(t.ExchangeKeys) > maxTaskPeers:
		return fmt.Errorf("%d key holders, more than the %d the agent accepts", max(len(t.Points), len(t.ExchangeKeys)), maxTaskPeers)
	case t.Spec == nil:
		return errors.New("no job spec")
	}
	switch t.Kind {
	case pb.TaskKind_TASK_KIND_TRAIN:
		switch {
		case t.Spec.Model == nil || t.Spec.Training == nil || t.Spec.Aggregation == nil:
			return errors.New("the job spec lacks its model, training or aggregation section")
		case t.InputParams == 0 || t.InputParams > maxTaskParams:
			return fmt.Errorf("a model of %d parameters (the agent accepts 1 to %d)", t.InputParams, maxTaskParams)
		case t.InputBlob == "":
			return errors.New("no global model named")
		}
	case pb.TaskKind_TASK_KIND_VALIDATE:
		return checkValidateTask(t)
	case pb.TaskKind_TASK_KIND_KEY_SETUP, pb.TaskKind_TASK_KIND_KEY_SHARES, pb.TaskKind_TASK_KIND_DECRYPT:
	default:
		return fmt.Errorf("unknown task kind %d: is this agent older than the coordinator?", int32(t.Kind))
	}
	return nil
}

// enqueue queues a task unless it is queued or running already (the
// coordinator sends a site's open tasks again when it reconnects).
func (a *Agent) enqueue(t *pb.Task) {
	if t == nil {
		return
	}
	if err := checkTask(t); err != nil {
		err = permanentf("the agent refused the task: %w", err)
		a.log.Warn("task refused", "job", bounded(t.JobId, maxIDLen), "err", err)
		a.ops.taskEnded(t.Kind, err)
		if t.TaskId != "" && len(t.TaskId) <= maxIDLen {
			a.report(t.TaskId, err)
		}
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tasks[t.TaskId] {
		return
	}
	if len(a.pending) >= maxQueued {
		a.log.Warn("task queue full; the coordinator will send the task again", "task", t.TaskId)
		return
	}
	a.tasks[t.TaskId] = true
	a.pending = append(a.pending, t)
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// cancelJob drops the job's queued tasks and stops its running one; its
// retries stop with it and nothing more is uploaded for it. A task of the
// job sent later (the job resumed) runs as usual.
func (a *Agent) cancelJob(job, reason string) {
	a.mu.Lock()
	dropped := 0
	a.pending = slices.DeleteFunc(a.pending, func(t *pb.Task) bool {
		if t.JobId != job {
			return false
		}
		delete(a.tasks, t.TaskId)
		dropped++
		return true
	})
	// Its unsent validation reports go too: a cancelled job gates nothing.
	a.outbox = slices.DeleteFunc(a.outbox, func(r *pb.ValidationReport) bool { return r.JobId == job })
	cur := a.current
	a.mu.Unlock()
	stopped := cur != nil && cur.t.JobId == job
	if stopped {
		cur.cancel(errJobCancelled)
	}
	a.log.Info("job cancelled by coordinator", "job", bounded(job, maxIDLen), "reason", bounded(reason, maxDetail),
		"queued_tasks_dropped", dropped, "running_task_stopped", stopped)
}

// next waits for the next queued task and returns it with its context,
// registered as running so that cancelJob can stop it; nil when ctx ends.
func (a *Agent) next(ctx context.Context) (*pb.Task, context.Context) {
	for {
		a.mu.Lock()
		if len(a.pending) > 0 {
			t := a.pending[0]
			a.pending = slices.Delete(a.pending, 0, 1)
			tctx, cancel := context.WithCancelCause(ctx)
			a.current = &runningTask{t: t, cancel: cancel}
			a.mu.Unlock()
			return t, tctx
		}
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil
		case <-a.wake:
		}
	}
}

// worker runs tasks one at a time: training is CPU-bound and the hospital's
// machine is shared.
func (a *Agent) worker(ctx context.Context) {
	for {
		t, tctx := a.next(ctx)
		if t == nil {
			return
		}
		err := a.runWithRetries(tctx, t)
		a.mu.Lock()
		a.current.cancel(nil)
		a.current = nil
		delete(a.tasks, t.TaskId)
		a.mu.Unlock()
		switch {
		case err == nil:
			a.ops.taskEnded(t.Kind, nil)
		case ctx.Err() != nil:
		case errors.Is(context.Cause(tctx), errJobCancelled):
			a.log.Info("task stopped: its job was cancelled", "task", t.TaskId)
		case linkDown(err):
			a.log.Warn("task not finished: the coordinator could not be reached; it sends the task again when the agent reconnects",
				"task", t.TaskId, "err", a.detail(err))
		default:
			a.log.Error("task failed", "task", t.TaskId, "err", a.detail(err), "permanent", errors.Is(err, ErrPermanent))
			a.ops.taskEnded(t.Kind, err)
			a.report(t.TaskId, err)
		}
	}
}

// runWithRetries runs a task, retrying twice with backoff. A failure of the
// link to the coordinator (linkDown) is retried, with backoff up to 30 s,
// for as long as the task's round deadline lasts, since the prepared update
// is kept and only its sending is repeated. A permanent failure, a
// cancelled job or a stopping agent ends it at once.
func (a *Agent) runWithRetries(ctx context.Context, t *pb.Task) error {
	start := time.Now()
	deadline := time.Duration(t.GetSpec().GetRoundDeadlineSeconds() * float64(time.Second))
	err := a.runTask(ctx, t)
	for try, wait := 1, time.Second; err != nil; try, wait = try+1, min(wait*2, 30*time.Second) {
		if ctx.Err() != nil || errors.Is(err, ErrPermanent) {
			return err
		}
		if linkDown(err) {
			if time.Since(start)+wait > deadline {
				return err
			}
		} else if try >= 3 {
			return err
		}
		a.log.Warn("task failed; retrying", "task", t.TaskId, "err", a.detail(err), "retry_in", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		err = a.runTask(ctx, t)
	}
	return err
}

// report tells the coordinator a task failed, with a bounded reason that
// names no folder below the site's own.
func (a *Agent) report(taskID string, err error) {
	select {
	case a.status <- &pb.TaskStatus{TaskId: taskID, State: "failed", Detail: a.detail(err)}:
	default:
		a.log.Warn("too many task reports waiting to be sent; dropped one", "task", taskID)
	}
}

func (a *Agent) runTask(ctx context.Context, t *pb.Task) (err error) {
	defer func() {
		// An odd task must fail, not take the hospital's agent down.
		if r := recover(); r != nil {
			a.log.Error("internal error while running a task", "task", t.TaskId, "panic", fmt.Sprint(r))
			err = permanentf("the agent failed on this task (internal error: %s): report it to the Concord maintainers", bounded(fmt.Sprint(r), 200))
		}
	}()
	if err := ctx.Err(); err != nil {
		return err // cancelled while queued or between tries
	}
	switch t.Kind {
	case pb.TaskKind_TASK_KIND_TRAIN:
		if err := a.refuseTrainingAtValidationSite(t); err != nil {
			return err
		}
		return a.train(ctx, t)
	case pb.TaskKind_TASK_KIND_VALIDATE:
		return a.validate(ctx, t)
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		return a.keySetup(ctx, t)
	case pb.TaskKind_TASK_KIND_KEY_SHARES:
		return a.keyShares(ctx, t)
	case pb.TaskKind_TASK_KIND_DECRYPT:
		return a.decrypt(ctx, t)
	}
	return permanentf("unknown task kind %v", t.Kind)
}
