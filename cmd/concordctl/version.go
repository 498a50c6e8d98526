package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/internal/version"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// infoTimeout bounds the coordinator call of `version`: the command must
// answer even when the coordinator is down.
const infoTimeout = 5 * time.Second

// versionOutput is the JSON of `concordctl version --json`.
type versionOutput struct {
	Client      string            `json:"client_version"`
	Coordinator coordinatorStatus `json:"coordinator"`
}

type coordinatorStatus struct {
	Reached        bool   `json:"reached"`
	Error          string `json:"error,omitempty"`
	Version        string `json:"version,omitempty"`
	MaxModelParams uint64 `json:"max_model_params,omitempty"`
	MaxPageSize    uint32 `json:"max_page_size,omitempty"`
	MaxStringBytes uint32 `json:"max_string_bytes,omitempty"`
}

func (g *globals) versionCommand() *cli.Command {
	c := &cli.Command{Name: "version", Args: "[--config FILE] [--json]",
		Synopsis: "print concordctl's version and, when reachable, the coordinator's",
		Help: "Print concordctl's version. With a config file, also ask the coordinator for its version\n" +
			"and limits; an unreachable coordinator is reported, not an error."}
	c.Run = func(args []string, stdout, stderr io.Writer) int {
		fs := c.NewFlagSet(stderr)
		cf := g.clientFlags(fs)
		pos, code, ok := c.Parse(fs, args, stdout, stderr)
		if !ok {
			return code
		}
		if code, ok := c.NoArgs(fs, pos, stderr); !ok {
			return code
		}
		out := versionOutput{Client: version.Of(version.Default)}
		out.Coordinator = askCoordinator(*cf.config)
		if *cf.json {
			if err := writeJSON(stdout, out); err != nil {
				return c.Fail(stderr, err)
			}
			return 0
		}
		fmt.Fprintf(stdout, "concordctl %s\n", out.Client)
		if !out.Coordinator.Reached {
			fmt.Fprintf(stdout, "coordinator: not reached (%s)\n", out.Coordinator.Error)
			return 0
		}
		ci := out.Coordinator
		fmt.Fprintf(stdout, "coordinator %s (max model params %d, max page size %d, max string bytes %d)\n",
			ci.Version, ci.MaxModelParams, ci.MaxPageSize, ci.MaxStringBytes)
		return 0
	}
	return c
}

func askCoordinator(configPath string) coordinatorStatus {
	if _, err := os.Stat(configPath); err != nil {
		return coordinatorStatus{Error: "no config file " + configPath}
	}
	cl, err := connect(configPath)
	if err != nil {
		return coordinatorStatus{Error: err.Error()}
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	info, err := cl.admin.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return coordinatorStatus{Error: explain(err)}
	}
	return coordinatorStatus{Reached: true, Version: info.Version, MaxModelParams: info.MaxModelParams,
		MaxPageSize: info.MaxPageSize, MaxStringBytes: info.MaxStringBytes}
}
