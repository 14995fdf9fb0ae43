package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func init() { moreCommands = append(moreCommands, (*app).benchCmd) }

// Bench defaults.
const (
	defaultBenchDuration = 5 * time.Second
	shortBenchDuration   = 300 * time.Millisecond
	defaultBenchSlices   = 3
	// benchPoolConns covers the sweep's 32 clients plus the preparation and
	// the listener's stash reads.
	benchPoolConns = 40
)

// benchOptions are the flags of `stepevents bench`.
type benchOptions struct {
	duration   time.Duration
	short      bool
	slices     int
	scenarios  []string
	cpuProfile string
	keepDB     bool
	waits      bool
}

func (a *app) benchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure what publishing costs a step completion, side by side with baselines",
		Long: `Measure stepevents against baselines on the same server, in one run, and report
each scenario's throughput, latency percentiles and its ratio to its baseline,
with the issue's target for it. Ratios compare; absolute figures only describe
this machine.

The bench creates its own scratch database (stepevents_bench_<random>) on the
server of --database-url, migrates it, applies its own templates, and drops it
at the end. The role needs CREATEDB. Progress goes to stderr.

Scenarios (--scenarios takes name prefixes, comma separated):
  publishing_overhead/c1,c8   step with the seed fixture's events vs the same step without declarations
                              (durable_part/c1,c8: its durable events alone, no fast delivery;
                              durable_by_hand/c1,c8: like messages sent by hand, the floor;
                              durable_part_vs_by_hand/c1,c8: stepevents against that floor)
  physical_limit/c1,c8        the same completion vs a bare single-row INSERT commit
  durable_vs_pgmq/c1,c8       4 durable events per completion vs the bare completion + 4 pgmq.send
  fast_latency/200,1000,max   commit -> subscriber handler vs bare pg_notify -> LISTEN (p99 ratio);
                              also in_tx/1000 and 1000x4 (four fast events per completion)
  concurrency_sweep/...       1-32 clients: fast after commit and in transaction vs durable-only
  durable_consumer/b10        stepevents consumer vs bare pgmq.read + pgmq.delete, batch 10`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if o.short && !cmd.Flags().Changed("duration") {
				o.duration = shortBenchDuration
			}
			if o.short && !cmd.Flags().Changed("slices") {
				o.slices = 1
			}
			return o.validate()
		},
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.runBench(cmd.Context(), o)
		}),
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", defaultBenchDuration, "measured time per side of each scenario")
	f.BoolVar(&o.short, "short", false, "smoke run: every scenario briefly (300ms per side, one slice)")
	f.IntVar(&o.slices, "slices", defaultBenchSlices, "interleaved slices each side's time is split into")
	f.StringSliceVar(&o.scenarios, "scenarios", nil, "only scenarios whose name starts with one of these")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process to this file")
	f.BoolVar(&o.keepDB, "keep-database", false, "keep the scratch database for inspection")
	f.BoolVar(&o.waits, "sample-waits", false,
		"sample pg_stat_activity every 10ms while each side runs and report where sessions wait")
	return a.withJSON(cmd)
}

// matches reports whether a row name is selected by the --scenarios prefixes.
func (o benchOptions) matches(row string) bool {
	if len(o.scenarios) == 0 {
		return true
	}
	return slices.ContainsFunc(o.scenarios, func(p string) bool { return strings.HasPrefix(row, strings.TrimSpace(p)) })
}

// selectGroups keeps the groups with at least one selected row.
func (o benchOptions) selectGroups(all []benchGroup) []benchGroup {
	var out []benchGroup
	for _, g := range all {
		if slices.ContainsFunc(g.rows, o.matches) {
			out = append(out, g)
		}
	}
	return out
}

// validate checks the flags' values: a bad one is a usage error (exit 2).
func (o benchOptions) validate() error {
	if o.duration <= 0 {
		return fmt.Errorf("--duration must be a positive duration like 5s, got %s", o.duration)
	}
	if o.slices <= 0 {
		return fmt.Errorf("--slices must be positive, got %d", o.slices)
	}
	// Names only: groups are built again on the scratch database.
	if len((o.selectGroups((&benchEnv{}).benchGroups()))) == 0 {
		var names []string
		for _, g := range (&benchEnv{}).benchGroups() {
			names = append(names, g.rows...)
		}
		return fmt.Errorf("no scenario matches --scenarios %s; scenarios: %s", strings.Join(o.scenarios, ","),
			strings.Join(names, ", "))
	}
	return nil
}

// runBench runs the bench; o has been validated.
func (a *app) runBench(ctx context.Context, o benchOptions) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("error creating the CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("error starting the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	admin, err := a.pool(ctx)
	if err != nil {
		return err
	}
	defer admin.Close()
	started := time.Now()
	name, err := createScratch(ctx, admin)
	if err != nil {
		return err
	}
	defer func() {
		if o.keepDB {
			fmt.Fprintf(a.stderr, "stepevents bench: kept scratch database %s\n", name)
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := dropScratch(cctx, admin, name); err != nil {
			fmt.Fprintf(a.stderr, "stepevents bench: %s\n", oneLine(err))
		}
	}()
	env, err := openEnv(ctx, admin, name, benchPoolConns)
	if err != nil {
		return err
	}
	defer env.close(context.WithoutCancel(ctx))

	rep := &benchReport{Version: 1, StartedAt: started.UTC(), Short: o.short, DurationPerSide: o.duration.String(),
		Slices: o.slices, Scenarios: []scenarioResult{}}
	if rep.Machine, err = machineInfo(ctx, env.pool, name); err != nil {
		return err
	}
	groups := o.selectGroups(env.benchGroups())
	total := 0
	for _, g := range groups {
		total += len(g.sides) * o.slices
	}
	bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription("stepevents bench"), progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true), progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(24), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(a.stderr) }))
	var sampler *waitSampler
	if o.waits {
		if sampler, err = startWaitSampler(ctx, env); err != nil {
			return err
		}
		defer sampler.close(context.WithoutCancel(ctx))
	}
	for _, g := range groups {
		rows, err := runGroup(ctx, g, o, bar, meters{waits: sampler, wal: &walMeter{pool: env.pool}})
		if err != nil {
			_ = bar.Exit()
			fmt.Fprintln(a.stderr)
			return fmt.Errorf("scenario %s: %w", g.name, err)
		}
		for _, r := range rows {
			if o.matches(r.Name) {
				rep.Scenarios = append(rep.Scenarios, r)
			}
		}
	}
	_ = bar.Finish()
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.TotalSeconds = round3(time.Since(started).Seconds())
	if a.json {
		return a.printJSON(rep)
	}
	return a.printBenchTable(rep)
}

// runGroup warms every side up, then measures them in o.slices interleaved
// slices, rotating the order each slice, and returns the group's rows.
func runGroup(ctx context.Context, g benchGroup, o benchOptions, bar *progressbar.ProgressBar,
	m meters) ([]scenarioResult, error) {
	if g.setup != nil {
		teardown, err := g.setup(ctx)
		if err != nil {
			return nil, err
		}
		defer func() { _ = teardown(context.WithoutCancel(ctx)) }()
	}
	warm := min(o.duration/5, time.Second)
	if o.short {
		warm = o.duration / 3
	}
	for _, s := range g.sides {
		s.group = g.name
		bar.Describe(fmt.Sprintf("%-18s warm-up %s", g.name, s.name))
		if _, err := measure(ctx, s, warm, meters{}); err != nil {
			return nil, err
		}
		if s.delivery != nil {
			s.delivery.settle(ctx, settleTimeout, false)
		}
		s.hist = newHist()
	}
	slice := o.duration / time.Duration(o.slices)
	for k := range o.slices {
		for j := range g.sides {
			s := g.sides[(j+k)%len(g.sides)]
			bar.Describe(fmt.Sprintf("%-18s %s", g.name, s.name))
			r, err := measure(ctx, s, slice, m)
			if err != nil {
				return nil, err
			}
			if s.delivery != nil {
				s.delivery.settle(ctx, settleTimeout, true)
			}
			s.ops += r.ops
			s.units += r.units
			s.elapsed += r.elapsed
			s.walBytes += r.walBytes
			s.hist.Merge(r.hist)
			_ = bar.Add(1)
		}
	}
	return g.report(g.sides), nil
}
