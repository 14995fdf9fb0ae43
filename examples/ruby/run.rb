# frozen_string_literal: true

# run.rb — subscribe the logging and metrics subscribers to stepevents' fast
# events and print what arrives. See README.md.
#
#   DATABASE_URL=postgres://... ruby run.rb [--pattern P]... [--max N]
#   ruby run.rb --check-patterns FILE | --check-envelopes FILE
#
# stdout: one JSON line per event the logging subscriber receives, then one
# line {"msg":"metrics",...} when it stops (SIGTERM, SIGINT or --max N).
# stderr: "listening" once LISTEN is active, then JSON log lines.
# Exit status: 0 after a clean stop, 1 when the database cannot be reached,
# 2 for a usage error (such as an invalid pattern).

require "json"
require "optparse"
require_relative "logging_subscriber"
require_relative "metrics_subscriber"

# FailingSubscriber raises on every event: with --failing-subscriber it shows
# that a handler's exception is rescued and counted without affecting the
# other subscribers.
class FailingSubscriber
  def call(event)
    raise "FailingSubscriber refuses #{event['event_name']}"
  end
end

def usage_error(msg)
  warn "run.rb: #{msg}"
  exit 2
end

# check_patterns evaluates a conformance table ({"matches": [{pattern, name,
# match}], "invalid": [{pattern, ...}]}) with this file's Pattern and prints
# what Ruby decided, for test/ruby to compare with Go.
def check_patterns(file)
  table = JSON.parse(File.read(file))
  matches = table.fetch("matches").map do |c|
    p = StepEvents::Pattern.parse(c.fetch("pattern"))
    { "pattern" => c["pattern"], "name" => c["name"], "match" => p.match?(c.fetch("name")), "error" => nil }
  rescue StepEvents::PatternError => e
    { "pattern" => c["pattern"], "name" => c["name"], "match" => nil, "error" => e.message }
  end
  invalid = table.fetch("invalid").map do |c|
    StepEvents::Pattern.parse(c.fetch("pattern"))
    { "pattern" => c["pattern"], "error" => nil }
  rescue StepEvents::PatternError => e
    { "pattern" => c["pattern"], "error" => e.message }
  end
  puts JSON.generate({ "matches" => matches, "invalid" => invalid })
end

# check_envelopes decodes each payload of a table ({"cases": [{name, key,
# payload}]}) with this file's Envelope and prints the outcome (ok,
# malformed, unsigned or forged, and the counts), for test/ruby to compare
# with Go's events.DecodeEnvelope.
def check_envelopes(file)
  results = JSON.parse(File.read(file)).fetch("cases").map do |c|
    events, refs = StepEvents::Envelope.decode(c.fetch("payload"), c["key"])
    { "name" => c["name"], "result" => "ok", "events" => events.length, "refs" => refs.length }
  rescue StepEvents::EnvelopeError => e
    kind = { StepEvents::UnsignedEnvelope => "unsigned", StepEvents::ForgedEnvelope => "forged" }.fetch(e.class, "malformed")
    { "name" => c["name"], "result" => kind, "error" => e.message }
  end
  puts JSON.generate({ "results" => results })
end

opts = { patterns: [], max: nil, prefix: "ruby", failing: [], channel: nil, check: nil, check_envelopes: nil }
begin
  OptionParser.new do |o|
    o.banner = "usage: ruby run.rb [options]    (DATABASE_URL, STEPEVENTS_SIGNING_KEY, STEPEVENTS_CHANNEL from the environment)"
    o.on("--pattern P", "subscribe both subscribers to P (repeatable; default \"*\")") { |v| opts[:patterns] << v }
    o.on("--max N", Integer, "stop after N events were received") do |v|
      usage_error("--max must be positive") unless v.positive?
      opts[:max] = v
    end
    o.on("--channel C", "NOTIFY channel (default $STEPEVENTS_CHANNEL or stepevents_events)") { |v| opts[:channel] = v }
    o.on("--prefix S", "prefix of the logging subscriber's messages (default ruby)") { |v| opts[:prefix] = v }
    o.on("--failing-subscriber P", "also subscribe a handler that raises on events matching P") { |v| opts[:failing] << v }
    o.on("--check-patterns FILE", "evaluate a pattern conformance table and print the results") { |v| opts[:check] = v }
    o.on("--check-envelopes FILE", "decode an envelope conformance table and print the results") do |v|
      opts[:check_envelopes] = v
    end
  end.parse!(ARGV)
rescue OptionParser::ParseError => e
  usage_error(e.message)
end
usage_error("unexpected arguments: #{ARGV.join(' ')}") unless ARGV.empty?

if opts[:check]
  check_patterns(opts[:check])
  exit 0
end
if opts[:check_envelopes]
  check_envelopes(opts[:check_envelopes])
  exit 0
end

$stdout.sync = true
out = StepEvents::JSONLogger.new($stdout)
log = StepEvents::JSONLogger.new($stderr)
patterns = opts[:patterns].empty? ? ["*"] : opts[:patterns]
metrics = StepEvents::MetricsSubscriber.new

begin
  listener = StepEvents::Listener.new(channel: opts[:channel], logger: log)
  listener.subscribe(patterns, StepEvents::LoggingSubscriber.new(logger: out, prefix: opts[:prefix]), name: "logging")
  listener.subscribe(patterns, metrics, name: "metrics")
  listener.subscribe(opts[:failing], FailingSubscriber.new, name: "failing") unless opts[:failing].empty?
rescue StepEvents::PatternError, ArgumentError => e
  usage_error(e.message)
end

%w[TERM INT].each { |sig| Signal.trap(sig) { listener.stop } }

begin
  listener.run(max_events: opts[:max], on_listening: -> { $stderr.puts("listening") })
rescue PG::Error => e
  warn "run.rb: error connecting to the database: #{e.message.strip}"
  exit 1
end

out.info("metrics", metrics: metrics.snapshot, listener: listener.health)
listener.close
