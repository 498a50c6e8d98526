package round

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the scenario scripts")

// TestScenarios runs every testdata/*.txt script through the machine and
// compares the trace of actions and phases with testdata/*.golden.
//
// Script commands (times are seconds since the job started):
//
//	config rounds=N min=N deadline=S cutoff=S secure=BOOL threshold=N sites=a,b exclude=v validate-only=v,w
//	at S start [SITE...] | connect SITE | disconnect SITE | deliver SITE KIND ROUND | tick
//	at S keycombined | aggregated ROUND | abort ACTOR REASON...
//	at S fail SITE KIND ROUND REASON... | revoke SITE REASON...
//	accept SITE KIND ROUND
func TestScenarios(t *testing.T) {
	scripts, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scenario scripts: %v", err)
	}
	for _, script := range scripts {
		name := strings.TrimSuffix(filepath.Base(script), ".txt")
		t.Run(name, func(t *testing.T) {
			got, err := runScript(script)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(script, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("trace differs from %s (go test -update rewrites it after review):\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

func runScript(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var out strings.Builder
	var m *Machine
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		fields := strings.Fields(line)
		fmt.Fprintf(&out, "> %s\n", line)
		switch fields[0] {
		case "config":
			cfg, err := parseConfig(fields[1:])
			if err != nil {
				return "", fmt.Errorf("line %d: %w", n, err)
			}
			if m, err = New(cfg); err != nil {
				return "", fmt.Errorf("line %d: %w", n, err)
			}
			continue
		case "accept":
			r, _ := strconv.Atoi(fields[3])
			if err := m.Accept(fields[1], Kind(fields[2]), r); err != nil {
				fmt.Fprintf(&out, "  rejected: %v\n", err)
			} else {
				out.WriteString("  accepted\n")
			}
			continue
		case "at":
		default:
			return "", fmt.Errorf("line %d: unknown command %q", n, fields[0])
		}
		secs, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			return "", fmt.Errorf("line %d: bad time: %w", n, err)
		}
		ev := Event{Now: t0.Add(time.Duration(secs * float64(time.Second)))}
		args := fields[3:]
		switch fields[2] {
		case "start":
			ev.Type, ev.Sites = EvStart, args
		case "connect":
			ev.Type, ev.Site = EvConnected, args[0]
		case "disconnect":
			ev.Type, ev.Site = EvDisconnected, args[0]
		case "deliver":
			ev.Type, ev.Site, ev.Kind = EvDelivered, args[0], Kind(args[1])
			ev.Round, _ = strconv.Atoi(args[2])
		case "tick":
			ev.Type = EvTick
		case "keycombined":
			ev.Type = EvKeyCombined
		case "aggregated":
			ev.Type = EvAggregated
			ev.Round, _ = strconv.Atoi(args[0])
		case "abort":
			ev.Type, ev.Actor, ev.Reason = EvAbort, args[0], strings.Join(args[1:], " ")
		case "fail":
			ev.Type, ev.Site, ev.Kind, ev.Reason = EvSiteFailed, args[0], Kind(args[1]), strings.Join(args[3:], " ")
			ev.Round, _ = strconv.Atoi(args[2])
		case "revoke":
			ev.Type, ev.Site, ev.Reason = EvRevoked, args[0], strings.Join(args[1:], " ")
		default:
			return "", fmt.Errorf("line %d: unknown event %q", n, fields[2])
		}
		for _, a := range m.Step(ev) {
			out.WriteString("  " + formatAction(a) + "\n")
		}
		st := m.State()
		fmt.Fprintf(&out, "  = phase=%s round=%d members=%s delivered=%d\n", st.Phase, st.Round, strings.Join(st.Members, ","), len(st.Delivered))
	}
	return out.String(), sc.Err()
}

func parseConfig(args []string) (Config, error) {
	cfg := Config{Rounds: 1, MinSites: 1, RoundDeadline: time.Minute, StragglerCutoff: 30 * time.Second}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return cfg, fmt.Errorf("bad config %q", a)
		}
		var err error
		switch k {
		case "rounds":
			cfg.Rounds, err = strconv.Atoi(v)
		case "min":
			cfg.MinSites, err = strconv.Atoi(v)
		case "deadline":
			var s float64
			s, err = strconv.ParseFloat(v, 64)
			cfg.RoundDeadline = time.Duration(s * float64(time.Second))
		case "cutoff":
			var s float64
			s, err = strconv.ParseFloat(v, 64)
			cfg.StragglerCutoff = time.Duration(s * float64(time.Second))
		case "secure":
			cfg.Secure, err = strconv.ParseBool(v)
		case "threshold":
			cfg.Threshold, err = strconv.Atoi(v)
		case "sites":
			cfg.Sites = strings.Split(v, ",")
		case "exclude":
			cfg.Exclude = strings.Split(v, ",")
		case "validate-only":
			cfg.ValidateOnly = strings.Split(v, ",")
		default:
			return cfg, fmt.Errorf("unknown config key %q", k)
		}
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", k, err)
		}
	}
	return cfg, nil
}

func formatAction(a Action) string {
	names := map[ActionType]string{ActSendTask: "send-task", ActCombineKey: "combine-key", ActAggregate: "aggregate",
		ActRoundClosed: "round-closed", ActCompleted: "completed", ActAborted: "aborted", ActNote: "note", ActDiscard: "discard"}
	s := names[a.Type]
	if a.Site != "" {
		s += " site=" + a.Site
	}
	if a.Kind != "" {
		s += " kind=" + string(a.Kind)
	}
	if a.Round != 0 {
		s += " round=" + strconv.Itoa(a.Round)
	}
	if len(a.Sites) > 0 {
		s += " sites=" + strings.Join(a.Sites, ",")
	}
	if a.Attempt != 0 {
		s += " attempt=" + strconv.Itoa(a.Attempt)
	}
	if a.Reason != "" {
		s += " reason=" + strconv.Quote(a.Reason)
	}
	return s
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
