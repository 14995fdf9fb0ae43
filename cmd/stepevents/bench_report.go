package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// benchReport is the --json document of `stepevents bench`: how it ran, on
// what, and one row per scenario. Its shape is what CI and BENCHMARKS.md
// rely on; add fields, never rename them.
type benchReport struct {
	Version         int              `json:"version"`
	StartedAt       time.Time        `json:"started_at"`
	Short           bool             `json:"short"`
	DurationPerSide string           `json:"duration_per_side"`
	Slices          int              `json:"slices"`
	Machine         benchMachine     `json:"machine"`
	Scenarios       []scenarioResult `json:"scenarios"`
	TotalSeconds    float64          `json:"total_seconds"`
}

// benchMachine says where the figures come from: they only compare with
// figures from the same kind of machine and server settings.
type benchMachine struct {
	CPUs         int    `json:"cpus"`
	GoVersion    string `json:"go_version"`
	MemTotal     string `json:"mem_total,omitempty"`
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
	Postgres     string `json:"postgres"`
	PgmqBackend  string `json:"pgmq_backend"`
	// TLS says whether the bench's connections use TLS (sslmode): on
	// loopback it costs both sides CPU, so compare runs with the same.
	TLS           bool              `json:"tls"`
	Settings      map[string]string `json:"settings"`
	ScratchDBName string            `json:"scratch_database"`
}

// scenarioResult is one row: a subject measured side by side with its
// baseline, their ratio and the target for it, when there is one.
type scenarioResult struct {
	Name     string      `json:"name"`
	Clients  int         `json:"clients"`
	Subject  sideSummary `json:"subject"`
	Baseline sideSummary `json:"baseline"`
	// RatioOf names what Ratio compares: "throughput" (subject/baseline)
	// or "p99_latency" (subject/baseline, lower is better).
	RatioOf string  `json:"ratio_of"`
	Ratio   float64 `json:"ratio"`
	Target  *target `json:"target,omitempty"`
	// TargetMet is nil when the scenario has no target.
	TargetMet *bool  `json:"target_met,omitempty"`
	Note      string `json:"note,omitempty"`
}

// target is one line of the target table.
type target struct {
	// Metric is "ratio" or "p99_ms" (the subject's p99 latency).
	Metric string  `json:"metric"`
	Op     string  `json:"op"` // ">=" or "<="
	Value  float64 `json:"value"`
}

func (t target) String() string {
	if t.Metric == "ratio" {
		return fmt.Sprintf("%s %.2f", t.Op, t.Value)
	}
	return fmt.Sprintf("p99 %s %gms", t.Op, t.Value)
}

func (t target) met(r scenarioResult) bool {
	v := r.Ratio
	if t.Metric == "p99_ms" {
		v = r.Subject.Latency.P99
	}
	if t.Op == "<=" {
		return v <= t.Value
	}
	return v >= t.Value
}

// sideSummary is what one side of a scenario did over all its slices.
type sideSummary struct {
	Name string `json:"name"`
	// Unit is what Throughput counts per second: completions, transactions,
	// messages or events.
	Unit       string  `json:"unit"`
	Ops        int64   `json:"ops"`
	Units      int64   `json:"units"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput"`
	// TargetRate is the requested rate for open-loop sides (0 = as fast as possible).
	TargetRate float64 `json:"target_rate,omitempty"`
	// Latency is the operation's latency, or for delivery sides the
	// commit → handler latency.
	Latency latencySummary `json:"latency_ms"`
	// OpLatency is the operation's own latency on delivery sides.
	OpLatency *latencySummary `json:"op_latency_ms,omitempty"`
	// WALBytesPerOp is the WAL the server wrote per operation while the
	// side ran (server-wide, see walMeter).
	WALBytesPerOp float64 `json:"wal_bytes_per_op"`
	// Lost counts deliveries that never arrived (delivery sides).
	Lost int64 `json:"lost,omitempty"`
	// Waits (with --sample-waits) is where the scratch database's sessions
	// spent their time while this side ran, largest share first.
	Waits []waitShare `json:"waits,omitempty"`
}

// latencySummary holds percentiles in milliseconds.
type latencySummary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// newHist returns a latency histogram in microseconds, 1 µs to 2 minutes,
// three significant digits.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(2*time.Minute/time.Microsecond), 3)
}

// recordLatency adds d to h, clamped to the histogram's range.
func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := max(d.Microseconds(), 1)
	_ = h.RecordValue(min(us, h.HighestTrackableValue()))
}

func summarize(h *hdrhistogram.Histogram) latencySummary {
	ms := func(us int64) float64 { return round3(float64(us) / 1000) }
	return latencySummary{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P95:   ms(h.ValueAtQuantile(95)),
		P99:   ms(h.ValueAtQuantile(99)),
		Max:   ms(h.Max()),
		Mean:  round3(h.Mean() / 1000),
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// throughputRow builds a row comparing the two sides' throughput.
func throughputRow(name string, clients int, subj, base sideSummary, tg *target) scenarioResult {
	r := scenarioResult{Name: name, Clients: clients, Subject: subj, Baseline: base, RatioOf: "throughput"}
	if base.Throughput > 0 {
		r.Ratio = round3(subj.Throughput / base.Throughput)
	}
	return withTarget(r, tg)
}

// latencyRow builds a row comparing the two sides' p99 latency.
func latencyRow(name string, clients int, subj, base sideSummary, tg *target) scenarioResult {
	r := scenarioResult{Name: name, Clients: clients, Subject: subj, Baseline: base, RatioOf: "p99_latency"}
	if base.Latency.P99 > 0 {
		r.Ratio = round3(subj.Latency.P99 / base.Latency.P99)
	}
	return withTarget(r, tg)
}

func withTarget(r scenarioResult, tg *target) scenarioResult {
	if tg != nil {
		r.Target = tg
		met := tg.met(r)
		r.TargetMet = &met
	}
	return r
}

// printBenchTable prints the human-readable form of rep.
func (a *app) printBenchTable(rep *benchReport) error {
	m := rep.Machine
	fmt.Fprintf(a.stdout, "stepevents bench: %d CPUs, PostgreSQL %s (pgmq: %s), synchronous_commit=%s, shared_buffers=%s, max_connections=%s, tls=%t\n",
		m.CPUs, m.Postgres, m.PgmqBackend, m.Settings["synchronous_commit"], m.Settings["shared_buffers"],
		m.Settings["max_connections"], m.TLS)
	fmt.Fprintf(a.stdout, "%s per side in %d interleaved slice(s); latencies in ms\n\n", rep.DurationPerSide, rep.Slices)
	w := a.table()
	fmt.Fprintln(w, "SCENARIO\tSUBJECT/s\tp50\tp95\tp99\tmax\tWAL/op\tBASELINE/s\tp99\tWAL/op\tRATIO\tTARGET\tMET")
	for _, r := range rep.Scenarios {
		tg, met := "-", "-"
		if r.Target != nil {
			tg = r.Target.String()
			met = "no"
			if *r.TargetMet {
				met = "yes"
			}
		}
		ratio := fmt.Sprintf("%.2f", r.Ratio)
		if r.RatioOf == "p99_latency" {
			ratio += " (p99)"
		}
		s, b := r.Subject, r.Baseline
		fmt.Fprintf(w, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\n", r.Name, rate(s), s.Latency.P50,
			s.Latency.P95, s.Latency.P99, s.Latency.Max, walSize(s.WALBytesPerOp), rate(b), b.Latency.P99,
			walSize(b.WALBytesPerOp), ratio, tg, met)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("error printing the bench table: %w", err)
	}
	var notes []string
	for _, r := range rep.Scenarios {
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("  %s: %s", r.Name, r.Note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(a.stdout, "\nnotes:\n%s\n", strings.Join(notes, "\n"))
	}
	printed := map[string]bool{}
	for _, r := range rep.Scenarios {
		for _, sd := range []sideSummary{r.Subject, r.Baseline} {
			if len(sd.Waits) == 0 || printed[r.Name+sd.Name] {
				continue
			}
			printed[r.Name+sd.Name] = true
			var parts []string
			for _, w := range sd.Waits[:min(4, len(sd.Waits))] {
				parts = append(parts, fmt.Sprintf("%.0f%% %s", w.Share*100, w.What))
			}
			fmt.Fprintf(a.stdout, "waits %s %s: %s\n", r.Name, sd.Name, strings.Join(parts, "; "))
		}
	}
	fmt.Fprintf(a.stdout, "\nsubject and baseline of each row: `stepevents bench --json` (.scenarios[].subject.name, .baseline.name)\n")
	return nil
}

// walSize prints WAL bytes per operation compactly (B, then kB).
func walSize(b float64) string {
	if b < 10_000 {
		return fmt.Sprintf("%.0fB", b)
	}
	return fmt.Sprintf("%.0fkB", b/1000)
}

func rate(s sideSummary) string {
	return fmt.Sprintf("%.0f %s", s.Throughput, shortUnit(s.Unit))
}

func shortUnit(u string) string {
	switch u {
	case "completions":
		return "compl"
	case "transactions":
		return "tx"
	case "messages":
		return "msg"
	case "events":
		return "ev"
	}
	return u
}
