// Package ruby_test drives the Ruby subscriber in examples/ruby as a real
// process: Go publishes through events.Client, Ruby LISTENs, and the tests
// assert what Ruby printed. It also checks that Ruby and Go agree on the
// pattern grammar, case by case.
package ruby_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/test/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const (
	runScript = "../../examples/ruby/run.rb"
	// startTimeout bounds Ruby's start until LISTEN is active; exitTimeout
	// bounds a whole run. Both are deadlines, not sleeps.
	startTimeout = 30 * time.Second
	exitTimeout  = 60 * time.Second
	// eventMsg is the logging subscriber's message (run.rb's default prefix).
	eventMsg = "ruby: event received"
)

// rubyBin returns the ruby executable. Without ruby the test is skipped,
// except in CI (CI=true), where it must run: .ci/run installs ruby and
// ruby-pg.
func rubyBin(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("ruby")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ruby is not installed but CI=true requires the Ruby subscriber tests: apt-get install -y ruby ruby-pg")
		}
		t.Skip("ruby is not installed (apt-get install -y ruby ruby-pg); these tests always run in CI")
	}
	return path
}

// rubyProc is a running `ruby run.rb` whose stdout and stderr are collected
// line by line as they arrive.
type rubyProc struct {
	cmd *exec.Cmd

	mu      sync.Mutex
	stdout  []string
	stderr  []string
	changed chan struct{} // closed and replaced on every new line

	exited  chan struct{} // closed once both pipes hit EOF and Wait returned
	waitErr error
}

// startRuby starts run.rb with args and the extra environment env (KEY=value,
// overriding the test's own environment). The process is killed when the
// test ends if it is still running.
func startRuby(t *testing.T, env []string, args ...string) *rubyProc {
	t.Helper()
	cmd := exec.Command(rubyBin(t), append([]string{runScript}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &rubyProc{cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go p.scan(stdout, &p.stdout, &wg)
	go p.scan(stderr, &p.stderr, &wg)
	go func() {
		wg.Wait()
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *rubyProc) scan(r io.Reader, into *[]string, wg *sync.WaitGroup) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		p.mu.Lock()
		*into = append(*into, sc.Text())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line over 4 MB: keep draining so ruby never blocks
}

// lines returns copies of what was printed so far.
func (p *rubyProc) lines() (stdout, stderr []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stdout...), append([]string(nil), p.stderr...)
}

// waitFor waits until cond holds on the output so far, failing at the
// deadline or when ruby exits first.
func (p *rubyProc) waitFor(t *testing.T, what string, timeout time.Duration, cond func(stdout, stderr []string) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok := cond(p.stdout, p.stderr)
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-p.exited:
			out, errOut := p.lines()
			if cond(out, errOut) {
				return
			}
			t.Fatalf("ruby exited (%v) before %s\nstdout:\n%s\nstderr:\n%s", p.waitErr, what,
				strings.Join(out, "\n"), strings.Join(errOut, "\n"))
		case <-deadline.C:
			out, errOut := p.lines()
			t.Fatalf("waited %s for %s\nstdout:\n%s\nstderr:\n%s", timeout, what,
				strings.Join(out, "\n"), strings.Join(errOut, "\n"))
		}
	}
}

// waitListening waits for run.rb's "listening" line: LISTEN is active, so
// events committed from now on reach it.
func (p *rubyProc) waitListening(t *testing.T) {
	t.Helper()
	p.waitFor(t, `"listening" on stderr`, startTimeout, func(_, stderr []string) bool {
		return contains(stderr, func(l string) bool { return l == "listening" })
	})
}

// wait waits for ruby to exit, requires the exit status want, and returns
// stdout parsed line by line.
func (p *rubyProc) wait(t *testing.T, want int) []outLine {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(exitTimeout):
		out, errOut := p.lines()
		t.Fatalf("ruby still running after %s\nstdout:\n%s\nstderr:\n%s", exitTimeout,
			strings.Join(out, "\n"), strings.Join(errOut, "\n"))
	}
	out, errOut := p.lines()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(p.waitErr, &exitErr) {
		code = exitErr.ExitCode()
	} else {
		require.NoError(t, p.waitErr)
	}
	require.Equal(t, want, code, "ruby's exit status\nstderr:\n%s", strings.Join(errOut, "\n"))
	parsed := make([]outLine, 0, len(out))
	for _, l := range out {
		var o outLine
		require.NoError(t, json.Unmarshal([]byte(l), &o), "stdout line is not JSON: %s", l)
		parsed = append(parsed, o)
	}
	return parsed
}

func contains(lines []string, pred func(string) bool) bool {
	for _, l := range lines {
		if pred(l) {
			return true
		}
	}
	return false
}

// outLine is one stdout line of run.rb: an event logged by the logging
// subscriber, a gap warning, or the final metrics line.
type outLine struct {
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	EventName string `json:"event_name"`
	EventID   string `json:"event_id"`
	TaskUUID  string `json:"task_uuid"`
	StepName  string `json:"step_name"`
	Namespace string `json:"namespace"`

	Metrics  *rubyMetrics `json:"metrics"`
	Listener *rubyHealth  `json:"listener"`
}

// rubyMetrics is MetricsSubscriber#snapshot.
type rubyMetrics struct {
	EventsReceived int            `json:"events_received"`
	SuccessEvents  int            `json:"success_events"`
	FailureEvents  int            `json:"failure_events"`
	ByEventName    map[string]int `json:"by_event_name"`
	GapSignals     int            `json:"gap_signals"`
}

// rubyHealth is Listener#health (counters named as in Go's ListenerHealth).
type rubyHealth struct {
	Channel                string    `json:"channel"`
	Received               int       `json:"received"`
	Decoded                int       `json:"decoded"`
	DroppedMalformed       int       `json:"dropped_malformed"`
	DroppedForged          int       `json:"dropped_forged"`
	DroppedOverflow        int       `json:"dropped_overflow"`
	Published              int       `json:"published"`
	RefsResolved           int       `json:"refs_resolved"`
	RefErrors              int       `json:"ref_errors"`
	Reconnects             int       `json:"reconnects"`
	NotificationQueueUsage *float64  `json:"notification_queue_usage"`
	QueueUsageError        string    `json:"queue_usage_error"`
	Subscribers            []rubySub `json:"subscribers"`
}

// rubySub is Subscription#stats.
type rubySub struct {
	Name          string   `json:"name"`
	Patterns      []string `json:"patterns"`
	Delivered     int      `json:"delivered"`
	HandlerErrors int      `json:"handler_errors"`
	Dropped       int      `json:"dropped"`
	Gaps          int      `json:"gaps"`
	QueueDepth    int      `json:"queue_depth"`
}

// loggedEvent is what the logging subscriber prints about one event.
type loggedEvent struct {
	Name, ID, TaskUUID, StepName, Namespace string
}

// loggedEvents returns the events the logging subscriber printed.
func loggedEvents(lines []outLine) []loggedEvent {
	var out []loggedEvent
	for _, l := range lines {
		if l.Msg == eventMsg {
			out = append(out, loggedEvent{l.EventName, l.EventID, l.TaskUUID, l.StepName, l.Namespace})
		}
	}
	return out
}

// metricsLine returns the final metrics line, which must be the last.
func metricsLine(t *testing.T, lines []outLine) outLine {
	t.Helper()
	require.NotEmpty(t, lines)
	last := lines[len(lines)-1]
	require.Equal(t, "metrics", last.Msg, "the last stdout line is the metrics line")
	require.NotNil(t, last.Metrics)
	require.NotNil(t, last.Listener)
	return last
}

// sub returns the stats of the named subscription.
func (h *rubyHealth) sub(t *testing.T, name string) rubySub {
	t.Helper()
	for _, s := range h.Subscribers {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no subscriber %q in %+v", name, h.Subscribers)
	return rubySub{}
}
