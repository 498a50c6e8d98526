package siteagent

import (
	"context"
	"time"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// health is the answer of the site's data check, as the coordinator sees it.
type health struct {
	examples int
	problem  string
}

func (h health) proto() *pb.Health {
	return &pb.Health{Examples: uint64(h.examples), DataProblem: h.problem}
}

// checkData runs the data source's check, records the answer and, when it
// changed, logs it and wakes the session to send Health.
func (a *Agent) checkData() health {
	var h health
	switch d := a.cfg.Data.(type) {
	case Checker:
		h.examples, h.problem = d.Check()
	case Counter:
		h.examples = d.Examples()
	}
	h.examples = max(h.examples, 0)
	if h.problem != "" {
		// A Checker written elsewhere may slip: bound it and keep its
		// folders to their base names all the same.
		h.problem = a.detail(dataProblem(h.problem))
	}
	a.mu.Lock()
	changed := !a.healthKnown || a.health != h
	a.health, a.healthKnown = h, true
	a.mu.Unlock()
	if !changed {
		return h
	}
	if h.problem != "" {
		a.log.Warn("the site's data cannot be trained on", "problem", h.problem)
	} else {
		a.log.Info("site data checked", "examples", h.examples)
	}
	select {
	case a.healthChanged <- struct{}{}:
	default:
	}
	return h
}

type dataProblem string

func (p dataProblem) Error() string { return string(p) }

func (a *Agent) currentHealth() health {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.health
}

// watchData checks the data every CheckInterval until ctx ends, so that the
// coordinator learns of a folder unmounted between jobs, or one fixed.
func (a *Agent) watchData(ctx context.Context) {
	t := time.NewTicker(a.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.checkData()
		}
	}
}
