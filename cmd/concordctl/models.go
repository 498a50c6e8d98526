package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/coordinator/registry"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// modelsCommand is `concordctl models ...`: the model registry. list,
// show, download and get call the coordinator; verify and diff read
// version directories offline (diff downloads versions given by name).
//
//	models list [--job ID] [--all] [--json]
//	models show VERSION [--trust FILE] [--json]
//	models download VERSION [--out DIR] [--trust FILE] [--json]
//	models get VERSION [--out FILE] [--json]
//	models verify DIR [--trust FILE] [--json]
//	models diff A B [--trust FILE] [--json]
func (g *globals) modelsCommand() *cli.Command {
	return &cli.Command{Name: "models", Synopsis: "model versions: list, show, download, verify, diff",
		Help: "concordctl models: the model registry. Each version carries a manifest signed with the\n" +
			"coordinator's audit key; download, verify and diff check it against the consortium's trust file.",
		Sub: []*cli.Command{g.modelsList(), g.modelsShow(), g.modelsDownload(), g.modelsGet(), g.modelsVerify(), g.modelsDiff()}}
}

func (g *globals) modelsList() *cli.Command {
	var job *string
	var all *bool
	return g.remote(&cli.Command{Name: "list", Args: "[--job ID] [--all] [--json]",
		Synopsis: "list published model versions (--all: rejected ones too)"}, 0,
		func(fs *flag.FlagSet) {
			job = fs.String("job", "", "only the models of job `ID`")
			all = fs.Bool("all", false, "also list versions the promotion gates rejected")
		},
		func(ctx context.Context, cl *client, asJSON bool, _ []string, out io.Writer) error {
			models, err := listModels(ctx, cl.admin, *job, *all)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, map[string]any{"models": protoList(models)})
			}
			if len(models) == 0 {
				fmt.Fprintln(out, "No model published yet; a model version is published when a job completes.")
				return nil
			}
			tw := table(out)
			fmt.Fprintln(tw, "VERSION\tSTATUS\tJOB\tROUND\tPARAMS\tCREATED\tDEVICE UID\tSHA256")
			for _, m := range models {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", m.Version, orDash(m.Status), m.JobId, m.Round, m.Params,
					time.Unix(m.CreatedUnix, 0).UTC().Format(time.RFC3339), orDash(cut(m.DeviceUid, 16)), cut(m.Sha256, 16))
			}
			return tw.Flush()
		})
}

// cut shortens s to n characters, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (g *globals) modelsShow() *cli.Command {
	var trustFile *string
	return g.remote(&cli.Command{Name: "show", Args: "VERSION [--trust FILE] [--json]",
		Synopsis: "show a version's signed manifest: lineage, gate decision, validation per site",
		Help: "Show a model version's manifest: what trained it, the promotion gates' decision and each\n" +
			"validation site's metrics with 95% intervals. The manifest's signature is checked against\n" +
			"the trust file (--trust, default " + defaultTrustFile + ") when there is one."}, 1,
		func(fs *flag.FlagSet) { trustFile = fs.String("trust", "", "the consortium's audit trust `FILE`") },
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			info, err := cl.admin.GetModelInfo(ctx, &pb.GetModelRequest{Version: args[0]})
			if err != nil {
				return err
			}
			if len(info.Manifest) == 0 {
				if asJSON {
					return writeJSON(out, map[string]any{"info": protoObject(info), "manifest": nil, "signature": "none"})
				}
				printModelInfo(out, info)
				return nil
			}
			m, sig, err := openOrInspect(info.Manifest, *trustFile)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, map[string]any{"info": protoObject(info), "manifest": m, "signature": sig})
			}
			printManifest(out, m, sig)
			return nil
		})
}

// openOrInspect verifies signed with the trust file when one is given or
// found, and otherwise decodes it unverified, saying so.
func openOrInspect(signed []byte, trustFile string) (registry.Manifest, string, error) {
	trust, path, err := findTrust(trustFile)
	if err != nil && trustFile != "" {
		return registry.Manifest{}, "", err
	}
	if trust != nil {
		m, err := registry.Open(signed, trust)
		if err != nil {
			return registry.Manifest{}, "", fmt.Errorf("manifest: %w", err)
		}
		return m, "verified with " + path, nil
	}
	m, key, err := registry.Inspect(signed)
	if err != nil {
		return registry.Manifest{}, "", err
	}
	return m, "NOT verified: claims key " + key + "; pass --trust FILE to check it", nil
}

func printModelInfo(w io.Writer, m *pb.ModelVersion) {
	fmt.Fprintf(w, "Model %s  (job %s, round %d)\n  status: %s\n  sha256: %s\n  lineage: %s\n", m.Version, m.JobId, m.Round,
		orDash(m.Status), m.Sha256, m.Lineage)
	fmt.Fprintln(w, "  no signed manifest: published by a coordinator without the model registry")
	for _, k := range sortedKeys(m.Metrics) {
		fmt.Fprintf(w, "  %s: %.4f\n", k, m.Metrics[k])
	}
}

func printManifest(w io.Writer, m registry.Manifest, sig string) {
	fmt.Fprintf(w, "Model %s  %s  (%s)\n", m.Version, m.Name, m.Status)
	fmt.Fprintf(w, "  device uid:  %s\n  created:     %s\n  signature:   %s\n", m.DeviceUID, m.Created.UTC().Format(time.RFC3339), sig)
	if m.Purpose != "" {
		fmt.Fprintf(w, "  purpose:     %s\n", m.Purpose)
	}
	if m.LegalBasis != "" {
		fmt.Fprintf(w, "  legal basis: %s\n", m.LegalBasis)
	}
	fmt.Fprintf(w, "\nGate: %s\n", m.Gate.State)
	for _, r := range m.Gate.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
	fmt.Fprintf(w, "\nLineage\n")
	tw := table(w)
	var training []string
	for _, s := range m.TrainingSites {
		training = append(training, fmt.Sprintf("%s (%d records)", s, m.Records[s]))
	}
	for _, row := range [][2]string{
		{"job", m.JobID}, {"rounds", fmt.Sprint(len(m.Rounds))}, {"parent", orDash(m.Parent)},
		{"training sites", strings.Join(training, ", ")}, {"validation sites", orDash(strings.Join(m.ValidationSites, ", "))},
		{"privacy", privacyLine(m.Privacy)}, {"secure aggregation", secureLine(m.SecureAggregation)},
		{"spec sha256", m.SpecSHA256}, {"pipeline hash", m.PipelineHash}, {"layout hash", m.LayoutHash},
		{"weights sha256", m.WeightsSHA256}, {"params", fmt.Sprint(m.Params)}, {"coordinator", m.Coordinator},
	} {
		fmt.Fprintf(tw, "  %s:\t%s\n", row[0], row[1])
	}
	tw.Flush()
	fmt.Fprintf(w, "\nValidation (global model, 95%% intervals)\n")
	if len(m.Validation) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	tw = table(w)
	fmt.Fprintln(tw, "  SITE\tROLE\tROUND\tEXAMPLES\tMETRIC\tVALUE\t95% INTERVAL")
	for _, v := range m.Validation {
		names := make([]string, 0, len(v.Assessment.Metrics))
		for k := range v.Assessment.Metrics {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			e := v.Assessment.Metrics[k]
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\t%.3f\t%.3f – %.3f\n", v.Site, v.ModelRole, v.Round, v.Assessment.Examples, k, e.Value, e.Lower, e.Upper)
		}
	}
	tw.Flush()
}

func privacyLine(p *registry.Privacy) string {
	if p == nil || p.Level == "" {
		return "none"
	}
	s := p.Level
	if p.NoiseMultiplier > 0 {
		s += fmt.Sprintf(", noise multiplier %g", p.NoiseMultiplier)
	}
	for _, site := range sortedKeys(p.EpsilonBySite) {
		s += fmt.Sprintf(", %s ε %.2f", site, p.EpsilonBySite[site])
	}
	return s
}

func secureLine(s *registry.SecureAggregation) string {
	if s == nil || s.Scheme == "" {
		return "none"
	}
	if s.Parties > 0 {
		return fmt.Sprintf("%s, %d of %d sites to decrypt", s.Scheme, s.Threshold, s.Parties)
	}
	return s.Scheme
}

// fetchModel streams a version's info, layout and weights, refusing more
// weight bytes than its parameter count allows.
func fetchModel(ctx context.Context, admin pb.AdminClient, version string) (*pb.ModelVersion, []byte, []byte, error) {
	stream, err := admin.GetModel(ctx, &pb.GetModelRequest{Version: version})
	if err != nil {
		return nil, nil, nil, err
	}
	var info *pb.ModelVersion
	var layout, weights []byte
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, err
		}
		if m.Info != nil && info == nil {
			info, layout = m.Info, m.Layout
		}
		if info == nil {
			return nil, nil, nil, errors.New("the coordinator sent weights before the model's info")
		}
		if uint64(len(weights))+uint64(len(m.Chunk.GetData())) > info.Params*4 {
			return nil, nil, nil, fmt.Errorf("the coordinator sent more than the %d parameters of %s", info.Params, version)
		}
		weights = append(weights, m.Chunk.GetData()...)
	}
	if info == nil {
		return nil, nil, nil, fmt.Errorf("the coordinator sent nothing for %s", version)
	}
	return info, layout, weights, nil
}

// download fetches version, checks its manifest against trust before
// writing anything, writes dir and verifies it as a reader would.
func download(ctx context.Context, admin pb.AdminClient, version, dir, trustFile string) (registry.Manifest, error) {
	trust, _, err := findTrust(trustFile)
	if err != nil {
		return registry.Manifest{}, err
	}
	info, layout, weights, err := fetchModel(ctx, admin, version)
	if err != nil {
		return registry.Manifest{}, err
	}
	if len(info.Manifest) == 0 {
		return registry.Manifest{}, fmt.Errorf("%s has no signed manifest (published before the model registry): fetch its weights with `concordctl models get %s`", version, version)
	}
	m, err := registry.Open(info.Manifest, trust)
	if err != nil {
		return registry.Manifest{}, fmt.Errorf("%s: %w", version, err)
	}
	if m.Version != version {
		return registry.Manifest{}, fmt.Errorf("asked for %s, the coordinator sent the signed manifest of %s", version, m.Version)
	}
	if err := registry.WriteDir(dir, info.Manifest, weights, layout); err != nil {
		return registry.Manifest{}, err
	}
	if _, err := registry.VerifyDir(dir, trust); err != nil {
		return registry.Manifest{}, fmt.Errorf("downloaded %s does not verify: %w", version, err)
	}
	return m, nil
}

func (g *globals) modelsDownload() *cli.Command {
	var outDir, trustFile *string
	return g.remote(&cli.Command{Name: "download", Args: "VERSION [--out DIR] [--trust FILE] [--json]",
		Synopsis: "download a version into a directory and verify it (weights, layout, signed manifest, model card)",
		Help: "Download a model version into DIR (default: the version's name): model.f32, layout.json,\n" +
			"manifest.json (signed by the coordinator), card.html and card.json (the model card) and\n" +
			"SHA256SUMS. The manifest is checked against the trust file (--trust, default " + defaultTrustFile + ")\n" +
			"before anything is written, and the directory is verified after."}, 1,
		func(fs *flag.FlagSet) {
			outDir = fs.String("out", "", "the version's `DIR` (default: VERSION)")
			trustFile = fs.String("trust", "", "the consortium's audit trust `FILE`")
		},
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			dir := *outDir
			if dir == "" {
				dir = args[0]
			}
			m, err := download(ctx, cl.admin, args[0], dir, *trustFile)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, map[string]any{"version": m.Version, "dir": dir, "status": m.Status, "device_uid": m.DeviceUID,
					"weights_sha256": m.WeightsSHA256, "params": m.Params, "gate": m.Gate})
			}
			fmt.Fprintf(out, "Model %s (%s, device uid %s): %d parameters written to %s and verified.\nModel card: %s/%s. Check again with: concordctl models verify %s\n",
				m.Version, m.Status, m.DeviceUID, m.Params, dir, dir, registry.FileCardHTML, dir)
			return nil
		})
}
func (g *globals) modelsGet() *cli.Command {
	var outPath *string
	return g.remote(&cli.Command{Name: "get", Args: "VERSION [--out FILE] [--json]",
		Synopsis: "download a model version's weights (--out FILE, default VERSION.f32) and layout (FILE.layout.json)"}, 1,
		func(fs *flag.FlagSet) { outPath = fs.String("out", "", "weights `file` (default VERSION.f32)") },
		func(ctx context.Context, cl *client, asJSON bool, args []string, out io.Writer) error {
			path := *outPath
			if path == "" {
				path = args[0] + ".f32"
			}
			stream, err := cl.admin.GetModel(ctx, &pb.GetModelRequest{Version: args[0]})
			if err != nil {
				return err
			}
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			defer f.Close()
			var info *pb.ModelVersion
			var n int64
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				if m.Info != nil {
					info = m.Info
					if err := os.WriteFile(path+".layout.json", m.Layout, 0o644); err != nil {
						return err
					}
				}
				w, err := f.Write(m.Chunk.GetData())
				if err != nil {
					return err
				}
				n += int64(w)
			}
			if err := f.Sync(); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(out, map[string]any{"version": info.GetVersion(), "job_id": info.GetJobId(), "round": info.GetRound(),
					"file": path, "bytes": n, "params": n / 4, "layout_file": path + ".layout.json"})
			}
			fmt.Fprintf(out, "Model %s (job %s, round %d): %d parameters written to %s, layout to %s.layout.json\n",
				info.GetVersion(), info.GetJobId(), info.GetRound(), n/4, path, path)
			return nil
		})
}
