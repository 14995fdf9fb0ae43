# frozen_string_literal: true

# StepEvents: receive stepevents fast events in Ruby, with nothing but
# Debian's `ruby` and `ruby-pg` packages.
#
# Fast events travel on PostgreSQL NOTIFY, so any client that can LISTEN can
# subscribe. This file is the Ruby side of the wire format defined in
# events/envelope.go and of the pattern grammar defined in events/pattern.go;
# test/ruby checks both against the Go implementation.
#
# Wire format (one NOTIFY payload):
#
#   {"v":1,"sig":"<hex HMAC-SHA256 of the env bytes>","env":{"events":[<event>...],"refs":["<event uuid>",...]}}
#
# `sig` is present only when the publisher has a signing key; it covers the
# exact bytes of the `env` value as they appear in the payload, so they are
# sliced out of the payload rather than re-serialised. `refs` name oversized
# events, read from stepevents.fast_event_stash on a second connection.
#
# Threads: the caller's thread only reads the LISTEN connection and queues
# payloads; one dispatcher thread decodes them, resolves references and hands
# events to each subscription's bounded queue; each subscription runs its
# handler on its own thread. A slow or failing handler therefore never delays
# the read loop (a listener that stops reading pins PostgreSQL's cluster-wide
# notification queue) nor the other subscribers.
#
# Fast events are at-most-once: whatever is notified while the connection is
# down is lost. After a reconnect every subscriber that defines #on_gap gets
# a StepEvents::Gap so it can re-read state.

require "json"
require "openssl"
require "pg"
require "strscan"
require "time"

# StepEvents is the Ruby subscriber side of stepevents' fast events.
module StepEvents
  # DEFAULT_CHANNEL is the NOTIFY channel publishers use unless configured
  # otherwise (events.DefaultChannel in Go).
  DEFAULT_CHANNEL = "stepevents_events"
  # ENVELOPE_VERSION is the only wire version this file understands.
  ENVELOPE_VERSION = 1
  # MAX_EVENT_NAME_LEN bounds event names and patterns, in bytes, as in Go.
  MAX_EVENT_NAME_LEN = 255
  # CHANNEL_RE is what a channel name must look like before it is quoted
  # into LISTEN (the same rule as Go's validChannel).
  CHANNEL_RE = /\A[a-z_][a-z0-9_]{0,62}\z/
  # MAX_NESTING is Go's encoding/json nesting limit (Ruby's default is 100),
  # so both accept the same events.
  MAX_NESTING = 10_000
  # STASH_QUERY reads one oversized event by id.
  STASH_QUERY = "SELECT event FROM stepevents.fast_event_stash WHERE event_id = $1"

  # Error is the root of this library's errors.
  class Error < StandardError; end
  # PatternError is raised at subscribe time for an invalid pattern.
  class PatternError < Error; end
  # EnvelopeError is any payload this library refuses.
  class EnvelopeError < Error; end
  # MalformedEnvelope: not the wire format above.
  class MalformedEnvelope < EnvelopeError; end
  # UnsignedEnvelope: a signing key is set but the payload has no sig.
  class UnsignedEnvelope < EnvelopeError; end
  # ForgedEnvelope: the sig is not the HMAC of env under the signing key.
  class ForgedEnvelope < EnvelopeError; end

  # Gap tells subscribers that the LISTEN connection was lost and is back:
  # fast events sent meanwhile are lost (durable ones are in pgmq).
  Gap = Struct.new(:channel, :disconnected_at, :reconnected_at, :cause, :reconnects, keyword_init: true) do
    # to_h with string keys and ISO 8601 times, for JSON logs.
    def to_json_hash
      { "channel" => channel, "disconnected_at" => disconnected_at&.utc&.iso8601(6),
        "reconnected_at" => reconnected_at&.utc&.iso8601(6), "cause" => cause, "reconnects" => reconnects }
    end
  end

  # quote renders s the way Go's %q does for the strings that occur in
  # pattern errors, so messages read the same in both languages.
  def self.quote(s)
    return "\"#{s.b.each_byte.map { |b| format('\\x%02x', b) }.join}\"" unless s.valid_encoding?

    out = +"\""
    s.each_char do |c|
      out << if c == "\"" || c == "\\"
               "\\#{c}"
             elsif GO_ESCAPES.key?(c.ord)
               GO_ESCAPES[c.ord]
             elsif c.ord < 0x20 || c.ord == 0x7f
               format('\\x%02x', c.ord)
             else
               c
             end
    end
    out << "\""
  end

  # GO_ESCAPES are the control characters Go's %q writes as letter escapes.
  GO_ESCAPES = { 0x07 => "\\a", 0x08 => "\\b", 0x0c => "\\f", 0x0a => "\\n", 0x0d => "\\r", 0x09 => "\\t",
                 0x0b => "\\v" }.freeze

  # quote_byte renders one byte as Go's %q renders rune(byte).
  def self.quote_byte(b)
    case b
    when 0x27 then "'\\''"
    when 0x5c then "'\\\\'"
    when 0x20..0x7e then "'#{b.chr}'"
    when *GO_ESCAPES.keys then "'#{GO_ESCAPES[b]}'"
    when 0x00..0x1f, 0x7f then format("'\\x%02x'", b)
    when 0x80..0xa0, 0xad then format("'\\u%04x'", b)
    else "'#{b.chr(Encoding::UTF_8)}'"
    end
  end

  # valid_event_name? is Go's template.ValidEventName: lower-case
  # [a-z0-9_] segments separated by dots, at least two, at most 255 bytes.
  # Events with any other name are dropped as malformed, as in Go.
  def self.valid_event_name?(name)
    name.is_a?(String) && name.bytesize <= MAX_EVENT_NAME_LEN && name.match?(/\A[a-z0-9_]+(?:\.[a-z0-9_]+)+\z/)
  end

  # dig reads a nested value from parsed JSON without raising when a level
  # is missing or not an object. Keys are strings: JSON.parse gives string
  # keys, and reading symbols (the original Ruby subscribers' bug) silently
  # returns nil.
  def self.dig(obj, *keys)
    keys.each do |k|
      return nil unless obj.is_a?(Hash)

      obj = obj[k]
    end
    obj
  end

  # parse_json parses JSON bytes (as PostgreSQL sends them), raising
  # MalformedEnvelope naming what failed to parse.
  def self.parse_json(bytes, what)
    JSON.parse(bytes.b.force_encoding(Encoding::UTF_8), max_nesting: MAX_NESTING)
  rescue JSON::ParserError, EncodingError => e
    raise MalformedEnvelope, "malformed #{what}: #{e.message.lines.first&.strip}"
  end

  # deep_freeze freezes a parsed event so one handler cannot change what
  # another sees (every subscriber gets the same object).
  def self.deep_freeze(obj)
    case obj
    when Hash then obj.each_value { |v| deep_freeze(v) }
    when Array then obj.each { |v| deep_freeze(v) }
    end
    obj.freeze
  end

  # Pattern is a validated subscription pattern, with the grammar of Go's
  # events.ParsePattern:
  #
  # - the lone "*" matches every event;
  # - otherwise dot-separated segments, where a literal segment ([a-z0-9_]+)
  #   matches itself, "*" matches exactly one segment ("payment.*" matches
  #   "payment.processed", not "payment.failed.retryable"), and a final ">"
  #   matches one or more segments ("payment.>" matches both, not "payment");
  # - anything else is rejected with a PatternError saying what is wrong.
  #
  # The original Ruby subscriber treated a trailing ".*" as a prefix match;
  # this one agrees with Go, checked case by case in test/ruby.
  class Pattern
    # raw is the pattern as written.
    attr_reader :raw

    # parse validates s and returns a Pattern, or raises PatternError with
    # the same explanation Go gives.
    def self.parse(s)
      raise PatternError, "invalid subscription pattern: #{s.inspect} is not a string" unless s.is_a?(String)
      return new(s, [], tail: false, all: true) if s == "*"
      if s.empty?
        raise PatternError, 'invalid subscription pattern "": it is empty; use "*" for every event or a name such as "payment.*"'
      end
      if s.bytesize > MAX_EVENT_NAME_LEN
        raise PatternError, "invalid subscription pattern #{StepEvents.quote("#{s.byteslice(0, 32).scrub}…")}: it is " \
                            "#{s.bytesize} characters long; at most #{MAX_EVENT_NAME_LEN} are allowed"
      end

      q = StepEvents.quote(s)
      parts = s.split(".", -1)
      segs = []
      tail = false
      parts.each_with_index do |seg, i|
        last = i == parts.length - 1
        if seg.empty?
          raise PatternError, "invalid subscription pattern #{q}: segment #{i + 1} is empty (leading, trailing or doubled dot)"
        elsif seg == ">" && !last
          raise PatternError, "invalid subscription pattern #{q}: \">\" must be the last segment " \
                              "(it matches all the remaining segments)"
        elsif seg == ">"
          tail = true
        elsif seg == "*"
          segs << seg
        elsif seg.delete("*>").empty?
          raise PatternError, "invalid subscription pattern #{q}: segment #{StepEvents.quote(seg)} repeats wildcards; " \
                              'use one "*" for exactly one segment or a final ">" for one or more'
        elsif seg.match?(/[*>]/)
          raise PatternError, "invalid subscription pattern #{q}: segment #{StepEvents.quote(seg)} mixes a wildcard " \
                              'with other characters; a wildcard must be a whole segment, e.g. "payment.*" or "payment.>"'
        else
          check_literal(q, s, seg)
          segs << seg
        end
      end
      new(s, segs, tail: tail, all: false)
    end

    def self.check_literal(quoted, pattern, seg)
      seg.each_byte do |b|
        case b
        when 0x61..0x7a, 0x30..0x39, 0x5f then next # a-z 0-9 _
        when 0x41..0x5a
          raise PatternError, "invalid subscription pattern #{quoted}: segment #{StepEvents.quote(seg)} has upper case; " \
                              "event names are lower case, so use #{StepEvents.quote(pattern.downcase)}"
        else
          raise PatternError, "invalid subscription pattern #{quoted}: segment #{StepEvents.quote(seg)} contains " \
                              "#{StepEvents.quote_byte(b)}; literal segments may only use a-z, 0-9 and _"
        end
      end
    end
    private_class_method :check_literal, :new

    def initialize(raw, segs, tail:, all:)
      @raw = raw.dup.freeze
      @segs = segs.map(&:freeze).freeze
      @tail = tail
      @all = all
      freeze
    end

    # match? reports whether event_name matches. Apart from the lone "*",
    # names with an empty segment match nothing.
    def match?(event_name)
      return true if @all
      return false unless event_name.is_a?(String) && !event_name.empty?

      names = event_name.split(".", -1) # -1: keep trailing empty segments
      return false if names.any?(&:empty?)

      @segs.each_with_index do |want, i|
        return false if i >= names.length || (want != "*" && want != names[i])
      end
      @tail ? names.length > @segs.length : names.length == @segs.length
    end

    # to_s returns the pattern as written.
    def to_s
      @raw
    end
  end

  # RawJSON splits a JSON object's text into its members without
  # re-serialising them, because the signature covers env's exact bytes.
  module RawJSON
    WS = /[ \t\n\r]*/n
    STRING = /"(?:[^"\\]++|\\.)*+"/mn
    SCALAR = /[^,\]}\s]+/n
    OTHER = /[^"\[\]{}]+/n

    # members returns name => [raw text, parsed value] for every member of
    # the object json (binary), the last of duplicate names winning as in
    # JSON.parse and Go. Every value is parsed, so invalid JSON anywhere
    # raises MalformedEnvelope, as Go's decoder refuses it.
    def self.members(json)
      s = StringScanner.new(json)
      s.skip(WS)
      s.skip(/\{/n) or raise MalformedEnvelope, "malformed fast envelope: not an object"
      s.skip(WS)
      out = {}
      until s.skip(/\}/n)
        key = s.scan(STRING) or raise MalformedEnvelope, "malformed fast envelope: expected a member name"
        name = StepEvents.parse_json(key, "fast envelope")
        s.skip(WS)
        s.skip(/:/n) or raise MalformedEnvelope, "malformed fast envelope: expected ':'"
        s.skip(WS)
        start = s.pos
        if (last = last_value(json, start))
          out[name] = last
          s.terminate
          break
        end
        skip_value(s)
        raw = json.byteslice(start, s.pos - start)
        out[name] = [raw, StepEvents.parse_json(raw, "fast envelope")]
        s.skip(WS)
        if s.skip(/,/n)
          s.skip(WS)
          raise MalformedEnvelope, "malformed fast envelope: expected a member after ','" unless s.check(/"/n)
        elsif !s.check(/\}/n)
          raise MalformedEnvelope, "malformed fast envelope: expected ',' or '}'"
        end
      end
      s.skip(WS)
      raise MalformedEnvelope, "malformed fast envelope: data after the object" unless s.eos?

      out
    end

    # last_value is the fast path for the last member (where Go puts env):
    # if everything from start to the final '}' is one JSON object or array,
    # that is the value, and no other member follows it. It saves scanning
    # a large env byte by byte; nil means "scan it".
    def self.last_value(json, start)
      return nil unless json.getbyte(start) == 0x7b || json.getbyte(start) == 0x5b # { or [

      stop = json.rindex("}")
      return nil if stop.nil? || stop <= start || !json.byteslice(stop + 1, json.bytesize).match?(/\A[ \t\n\r]*\z/n)

      stop -= 1 while stop > start && [0x20, 0x09, 0x0a, 0x0d].include?(json.getbyte(stop - 1))
      raw = json.byteslice(start, stop - start)
      [raw, JSON.parse(raw.dup.force_encoding(Encoding::UTF_8), max_nesting: MAX_NESTING)]
    rescue JSON::ParserError, EncodingError
      nil
    end

    def self.skip_value(s)
      if s.check(/"/n)
        s.skip(STRING) or raise MalformedEnvelope, "malformed fast envelope: unterminated string"
      elsif s.check(/[\[{]/n)
        depth = 0
        loop do
          s.skip(OTHER)
          if s.check(/"/n)
            s.skip(STRING) or raise MalformedEnvelope, "malformed fast envelope: unterminated string"
          elsif s.skip(/[\[{]/n)
            depth += 1
          elsif s.skip(/[\]}]/n)
            depth -= 1
            return if depth.zero?
          else
            raise MalformedEnvelope, "malformed fast envelope: unterminated value"
          end
        end
      else
        s.skip(SCALAR) or raise MalformedEnvelope, "malformed fast envelope: expected a value"
      end
    end
    private_class_method :last_value, :skip_value
  end

  # Envelope decodes NOTIFY payloads exactly as Go's events.DecodeEnvelope:
  # shape, version and (with a key) signature are checked; nothing else
  # about the events is trusted here.
  module Envelope
    UUID_RE = /\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/

    # decode returns [events, refs]: the inline events as parsed JSON (string
    # keys) and the referenced event ids. It raises MalformedEnvelope,
    # UnsignedEnvelope or ForgedEnvelope.
    def self.decode(payload, key = nil)
      members = RawJSON.members(payload.b)
      v = members["v"]&.last
      unless v.is_a?(Integer) && v == ENVELOPE_VERSION
        raise MalformedEnvelope, "malformed fast envelope: version #{v.inspect}"
      end

      raw_env, env = members["env"]
      raise MalformedEnvelope, "malformed fast envelope: no env" if raw_env.nil?

      sig = members["sig"]&.last
      raise MalformedEnvelope, "malformed fast envelope: sig is not a string" unless sig.nil? || sig.is_a?(String)

      verify(raw_env, sig, key) if key && !key.empty?
      shape(env)
    end

    def self.verify(raw_env, sig, key)
      raise UnsignedEnvelope, "unsigned fast envelope" if sig.nil? || sig.empty?

      want = OpenSSL::HMAC.hexdigest("SHA256", key, raw_env)
      raise ForgedEnvelope, "fast envelope signature mismatch" unless secure_equal?(want, sig)
    end

    # secure_equal? compares in constant time (OpenSSL.secure_compare needs
    # the openssl gem 2.2+, Ruby 3.0+).
    def self.secure_equal?(a, b)
      return OpenSSL.secure_compare(a, b) if OpenSSL.respond_to?(:secure_compare)
      return false unless a.bytesize == b.bytesize

      diff = 0
      a.bytes.zip(b.bytes) { |x, y| diff |= x ^ y }
      diff.zero?
    end

    def self.shape(env)
      raise MalformedEnvelope, "malformed fast envelope: env is not an object" unless env.is_a?(Hash)

      events = env["events"] || []
      refs = env["refs"] || []
      raise MalformedEnvelope, "malformed fast envelope: events is not an array" unless events.is_a?(Array)
      raise MalformedEnvelope, "malformed fast envelope: refs is not an array" unless refs.is_a?(Array)

      refs.each do |r|
        raise MalformedEnvelope, "malformed fast envelope: ref #{r.inspect} is not a uuid" unless r.is_a?(String) && r.match?(UUID_RE)
      end
      raise MalformedEnvelope, "malformed fast envelope: empty" if events.empty? && refs.empty?

      [events, refs.map(&:downcase)]
    end

    private_class_method :verify, :secure_equal?, :shape
  end

  # JSONLogger writes one JSON object per line ({"time","level","msg",...})
  # under a mutex, so lines from several threads never interleave.
  class JSONLogger
    LEVELS = { "DEBUG" => 0, "INFO" => 1, "WARN" => 2, "ERROR" => 3 }.freeze

    def initialize(io = $stderr, level: "INFO")
      @io = io
      @min = LEVELS.fetch(level.to_s.upcase)
      @mutex = Mutex.new
    end

    # debug, info, warn and error log msg with attrs (any JSON values).
    def debug(msg, **attrs)
      log("DEBUG", msg, attrs)
    end

    def info(msg, **attrs)
      log("INFO", msg, attrs)
    end

    def warn(msg, **attrs)
      log("WARN", msg, attrs)
    end

    def error(msg, **attrs)
      log("ERROR", msg, attrs)
    end

    private

    def log(level, msg, attrs)
      return if LEVELS.fetch(level) < @min

      rec = { "time" => Time.now.utc.iso8601(6), "level" => level, "msg" => msg }
      attrs.each { |k, v| rec[k.to_s] = v }
      line = begin
        JSON.generate(rec)
      rescue JSON::GeneratorError, EncodingError => e # e.g. a server message in another encoding
        JSON.generate({ "time" => rec["time"], "level" => level, "msg" => msg.to_s.scrub,
                        "log_error" => e.message.scrub, "attrs" => attrs.inspect.scrub })
      end
      @mutex.synchronize { @io.write(line << "\n") }
    end
  end

  # Subscription is one handler with its patterns, bounded queue and thread.
  # A full queue drops the newest event and counts it (never blocks the
  # dispatcher); a handler's exception is rescued, logged and counted.
  class Subscription
    # name identifies the subscription in logs and stats; patterns are the
    # parsed patterns (an event matching any of them is delivered).
    attr_reader :name, :patterns

    def initialize(listener, name, patterns, handler, queue_size, logger)
      @listener = listener
      @name = name
      @patterns = patterns.freeze
      @handler = handler
      @logger = logger
      @queue = SizedQueue.new(queue_size)
      @missed_gap = nil
      @mutex = Mutex.new
      @counts = { "delivered" => 0, "handler_errors" => 0, "dropped" => 0, "gaps" => 0 }
      @thread = Thread.new { work }
      @thread.name = "stepevents-sub-#{name}"
    end

    # match? reports whether an event named event_name goes to this handler.
    def match?(event_name)
      @patterns.any? { |p| p.match?(event_name) }
    end

    # offer queues an event without waiting; when the queue is full the
    # event is dropped and counted.
    def offer(event)
      @queue.push(event, true)
    rescue ThreadError, ClosedQueueError
      n = incr("dropped")
      @logger.warn("stepevents subscriber: queue full, event dropped", subscriber: @name, count: n) if power_of_two?(n)
    end

    # offer_gap queues a gap signal; it is never lost, even when the queue
    # is full (it is then delivered after the next event).
    def offer_gap(gap)
      @queue.push(gap, true)
    rescue ThreadError
      @missed_gap = gap
    rescue ClosedQueueError
      nil
    end

    # unsubscribe removes this subscription only (the original's stop!
    # removed every handler on the same pattern) and drains its queue.
    def unsubscribe(timeout = 5.0)
      @listener.remove(self)
      close(timeout)
    end

    # close stops accepting events, lets the handler drain what is queued
    # until timeout seconds pass, and returns how many were not delivered.
    def close(timeout)
      @queue.close
      return 0 if @thread.join(timeout)

      @thread.kill
      @thread.join
      left = @queue.size
      @logger.warn("stepevents subscriber: drain deadline passed", subscriber: @name, undelivered: left)
      left
    end

    # stats returns the counters and current queue depth.
    def stats
      @mutex.synchronize { @counts.dup }.merge("name" => @name, "patterns" => @patterns.map(&:to_s),
                                                "queue_depth" => @queue.size)
    end

    private

    def incr(key)
      @mutex.synchronize { @counts[key] += 1 }
    end

    def power_of_two?(n)
      (n & (n - 1)).zero?
    end

    def work
      while (item = @queue.pop)
        handle(item)
        if (gap = @missed_gap)
          @missed_gap = nil
          handle(gap)
        end
      end
    end

    def handle(item)
      if item.is_a?(Gap)
        incr("gaps")
        @handler.on_gap(item) if @handler.respond_to?(:on_gap)
      else
        @handler.call(item)
        incr("delivered")
      end
    rescue StandardError => e
      n = incr("handler_errors")
      @logger.error("stepevents subscriber: handler raised", subscriber: @name, error_class: e.class.name,
                                                              error: e.message, count: n,
                                                              event_name: item.is_a?(Hash) ? item["event_name"] : nil)
    end
  end

  # Listener owns the LISTEN connection, the dispatcher and the
  # subscriptions. Use: subscribe, then run (blocking), from a thread that
  # may be interrupted by #stop (signal-handler safe).
  class Listener
    # Defaults, equal to or in the spirit of the Go Listener's.
    RECONNECT_DELAY = 0.1
    MAX_RECONNECT_DELAY = 5.0
    POLL_INTERVAL = 0.25
    INBOX_SIZE = 4096
    QUEUE_SIZE = 1024
    DRAIN_TIMEOUT = 5.0
    STATEMENT_TIMEOUT_MS = 5000
    COUNTERS = %w[received decoded dropped_malformed dropped_forged dropped_overflow published refs_resolved
                  ref_errors reconnects].freeze

    # channel is the NOTIFY channel listened to.
    attr_reader :channel

    # database_url: libpq URL or conninfo (default ENV["DATABASE_URL"]);
    # channel: default ENV["STEPEVENTS_CHANNEL"] or DEFAULT_CHANNEL;
    # signing_key: when set (default ENV["STEPEVENTS_SIGNING_KEY"]), unsigned
    # and forged envelopes are dropped — NOTIFY has no access control, so
    # without a key anyone who can connect can inject events.
    def initialize(database_url: ENV.fetch("DATABASE_URL", nil), channel: ENV.fetch("STEPEVENTS_CHANNEL", nil),
                   signing_key: ENV.fetch("STEPEVENTS_SIGNING_KEY", nil), logger: JSONLogger.new($stderr),
                   application_name: "stepevents_ruby_listener", queue_size: QUEUE_SIZE, inbox_size: INBOX_SIZE,
                   reconnect_delay: RECONNECT_DELAY, max_reconnect_delay: MAX_RECONNECT_DELAY,
                   poll_interval: POLL_INTERVAL, drain_timeout: DRAIN_TIMEOUT)
      raise ArgumentError, "stepevents listener: DATABASE_URL is not set" if database_url.nil? || database_url.empty?

      @channel = channel.nil? || channel.empty? ? DEFAULT_CHANNEL : channel
      unless @channel.match?(CHANNEL_RE)
        raise ArgumentError, "stepevents listener: channel #{@channel.inspect} must match #{CHANNEL_RE.inspect}"
      end

      @database_url = database_url
      @key = signing_key.nil? || signing_key.empty? ? nil : signing_key.b.freeze
      @logger = logger
      @application_name = application_name
      @queue_size = queue_size
      @reconnect_delay = reconnect_delay
      @max_reconnect_delay = [max_reconnect_delay, reconnect_delay].max
      @poll_interval = poll_interval
      @drain_timeout = drain_timeout
      @inbox = SizedQueue.new(inbox_size)
      @subs = [].freeze
      @subs_mutex = Mutex.new
      @stats_mutex = Mutex.new
      @counts = COUNTERS.to_h { |c| [c, 0] }
      @stopping = false
      @max_reached = false
      @gap_pending = nil
      @ran = false
    end

    # subscribe registers handler (anything with #call(event), optionally
    # #on_gap(gap); or a block) for events matching any of patterns. Every
    # pattern is validated first: a PatternError leaves nothing registered.
    # Returns the Subscription; its #unsubscribe removes only it.
    def subscribe(patterns, handler = nil, name: nil, &block)
      parsed = Array(patterns).map { |p| Pattern.parse(p) }
      raise PatternError, "stepevents: subscribe needs at least one pattern" if parsed.empty?

      handler ||= block
      raise ArgumentError, "stepevents: handler must respond to #call" unless handler.respond_to?(:call)

      sub = Subscription.new(self, name || handler.class.name, parsed, handler, @queue_size, @logger)
      @subs_mutex.synchronize { @subs = (@subs + [sub]).freeze }
      sub
    end

    # remove drops sub from the dispatch list (Subscription#unsubscribe).
    def remove(sub)
      @subs_mutex.synchronize { @subs = (@subs - [sub]).freeze }
    end

    # run connects, LISTENs, calls on_listening once LISTEN is active, and
    # reads notifications until #stop is called or max_events events were
    # handed to subscribers. It raises if the first connection fails (a bad
    # URL does not look like a hang); later failures are retried with
    # jittered exponential backoff. On return every subscription has been
    # drained (up to the drain timeout).
    def run(max_events: nil, on_listening: nil)
      raise Error, "stepevents listener: run called twice" if @ran

      @ran = true
      @max_events = max_events
      @conn = connect_and_listen
      @dispatcher = Thread.new { dispatch_loop }
      @dispatcher.name = "stepevents-dispatcher"
      @logger.info("stepevents listener: listening", channel: @channel, backend_pid: @backend_pid)
      on_listening&.call
      read_loop
    ensure
      shutdown
    end

    # stop asks run to return. It only sets a flag, so it is safe in a
    # signal handler; run notices within poll_interval.
    def stop
      @stopping = true
    end

    # health returns the counters (named as in Go's ListenerHealth), the
    # subscriptions' counters and pg_notification_queue_usage() — the
    # cluster-wide NOTIFY queue that a listener which stops reading fills.
    def health
      h = @stats_mutex.synchronize { @counts.dup }
      h["channel"] = @channel
      h["backend_pid"] = @backend_pid
      h["subscribers"] = @subs.map(&:stats)
      begin
        h["notification_queue_usage"] = query_conn.exec("SELECT pg_notification_queue_usage()").getvalue(0, 0).to_f
      rescue PG::Error => e
        h["queue_usage_error"] = "error querying pg_notification_queue_usage(): #{e.message.strip}"
        close_query_conn
      end
      h
    end

    # close releases the query connection (after run and health).
    def close
      close_query_conn
    end

    private

    def incr(key, by = 1)
      @stats_mutex.synchronize { @counts[key] += by }
    end

    def count(key)
      @stats_mutex.synchronize { @counts[key] }
    end

    # connect_and_listen opens a fresh dedicated connection (never reused
    # across reconnects) and runs LISTEN, the only statement it ever runs:
    # notifications are delivered only between transactions.
    def connect_and_listen
      conn = PG.connect(@database_url, application_name: @application_name, connect_timeout: 10)
      conn.set_notice_processor { |msg| @logger.debug("stepevents listener: server notice", notice: msg.strip) }
      conn.exec("LISTEN #{conn.quote_ident(@channel)}")
      @backend_pid = conn.backend_pid
      conn
    rescue PG::Error
      conn&.close
      raise
    end

    # read_loop only reads: each payload is queued for the dispatcher
    # without waiting; when the dispatcher is INBOX_SIZE behind, it is
    # dropped and counted.
    def read_loop
      until @stopping
        begin
          @conn.wait_for_notify(@poll_interval) do |_channel, _pid, payload|
            incr("received")
            begin
              @inbox.push(payload, true)
            rescue ThreadError
              n = incr("dropped_overflow")
              @logger.warn("stepevents listener: dispatcher behind, envelope dropped", count: n) if (n & (n - 1)).zero?
            end
          end
        rescue PG::Error => e
          reconnect(e)
        end
      end
    end

    def reconnect(err)
      disconnected_at = Time.now
      cause = err.message.strip
      begin
        @conn&.close
      rescue PG::Error
        nil
      end
      @conn = nil
      @logger.warn("stepevents listener: connection error, reconnecting", channel: @channel, error: cause)
      failures = 0
      until @stopping
        failures += 1
        pause(backoff(failures))
        break if @stopping

        begin
          @conn = connect_and_listen
        rescue PG::Error => e
          cause = e.message.strip
          @logger.warn("stepevents listener: reconnect failed", channel: @channel, error: cause,
                                                                consecutive_failures: failures)
          next
        end
        n = incr("reconnects")
        now = Time.now
        @logger.info("stepevents listener: reconnected; fast events sent meanwhile are lost",
                     channel: @channel, reconnects: n, backend_pid: @backend_pid, down_for_s: (now - disconnected_at).round(3))
        gap = Gap.new(channel: @channel, disconnected_at: disconnected_at, reconnected_at: now, cause: cause,
                      reconnects: n)
        begin
          @inbox.push(gap, true)
        rescue ThreadError
          @gap_pending = gap # the dispatcher delivers it next: a gap is never lost
        end
        return
      end
    end

    # backoff is RECONNECT_DELAY doubled per consecutive failure, capped,
    # jittered to [d/2, d].
    def backoff(n)
      d = [@reconnect_delay * (2**(n - 1)), @max_reconnect_delay].min
      (d / 2) + (rand * d / 2)
    end

    def pause(seconds)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
      until @stopping
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        break if left <= 0

        sleep([left, 0.05].min)
      end
    end

    # dispatch_loop handles queued payloads in arrival order until the inbox
    # is closed and empty, or max_events was reached.
    def dispatch_loop
      while (item = @inbox.pop)
        if (gap = @gap_pending)
          @gap_pending = nil
          publish_gap(gap)
        end
        item.is_a?(Gap) ? publish_gap(item) : handle_payload(item)
        break if @max_reached
      end
    rescue StandardError => e
      @logger.error("stepevents listener: dispatcher failed", error_class: e.class.name, error: e.message)
      @stopping = true
    end

    def handle_payload(payload)
      events, refs = Envelope.decode(payload, @key)
      incr("decoded")
      events.each do |raw|
        ev = check_event(raw)
        publish(ev) if ev
      end
      resolve(refs) unless refs.empty?
    rescue UnsignedEnvelope, ForgedEnvelope => e
      drop("dropped_forged", "forged or unsigned envelope", payload, e)
    rescue MalformedEnvelope => e
      drop("dropped_malformed", "malformed envelope", payload, e)
    end

    def drop(counter, what, payload, err)
      n = incr(counter)
      return unless (n & (n - 1)).zero? # log the 1st, 2nd, 4th, 8th… of each kind

      @logger.warn("stepevents listener: dropped #{what}", channel: @channel, payload_bytes: payload.bytesize,
                                                          count: n, error: err.message)
    end

    # check_event accepts what Go's Listener accepts as far as handlers rely
    # on it: an object with a valid event_name and a uuid event_id (or none).
    # Anything else is counted as malformed.
    def check_event(ev)
      unless ev.is_a?(Hash) && StepEvents.valid_event_name?(ev["event_name"]) &&
             (ev["event_id"].nil? || (ev["event_id"].is_a?(String) && ev["event_id"].match?(Envelope::UUID_RE)))
        incr("dropped_malformed")
        @logger.warn("stepevents listener: dropped an event without a valid event_name and event_id",
                     event_name: ev.is_a?(Hash) ? ev["event_name"].to_s : nil)
        return nil
      end
      StepEvents.deep_freeze(ev)
    end

    # resolve reads oversized events from the stash on the query connection
    # (never the LISTEN one) and publishes them in reference order.
    def resolve(refs)
      refs.each do |id|
        return if @max_reached

        res = query_conn.exec_params(STASH_QUERY, [id])
        if res.ntuples.zero?
          incr("ref_errors")
          @logger.warn("stepevents listener: stashed event not found (pruned after an hour, or forged reference)",
                       event_id: id)
          next
        end
        ev = check_event(StepEvents.parse_json(res.getvalue(0, 0), "stashed event"))
        if ev.nil?
          incr("ref_errors")
          next
        end
        incr("refs_resolved")
        publish(ev)
      rescue PG::Error, MalformedEnvelope => e
        incr("ref_errors")
        @logger.error("stepevents listener: error fetching stashed event", event_id: id, error: e.message.strip)
        close_query_conn if e.is_a?(PG::Error)
      end
    end

    def publish(ev)
      return if @max_reached

      n = incr("published")
      name = ev["event_name"]
      @subs.each { |s| s.offer(ev) if s.match?(name) }
      return unless @max_events && n >= @max_events

      @max_reached = true
      @stopping = true
    end

    def publish_gap(gap)
      @subs.each { |s| s.offer_gap(gap) }
    end

    def query_conn
      @query_conn ||= PG.connect(@database_url, application_name: "#{@application_name}_queries", connect_timeout: 10,
                                                options: "-c statement_timeout=#{STATEMENT_TIMEOUT_MS}")
    end

    def close_query_conn
      @query_conn&.close
    rescue PG::Error
      nil
    ensure
      @query_conn = nil
    end

    # shutdown closes the LISTEN connection, lets the dispatcher finish what
    # was already received (unless max_events stopped it) and drains every
    # subscription up to the drain timeout.
    def shutdown
      @stopping = true
      begin
        @conn&.close
      rescue PG::Error
        nil
      end
      @conn = nil
      @inbox.close
      if @dispatcher && !@dispatcher.join(@drain_timeout)
        @logger.warn("stepevents listener: dispatcher did not finish in time", pending: @inbox.size)
        @dispatcher.kill
        @dispatcher.join
      end
      left = @subs.sum { |s| s.close(@drain_timeout) }
      @logger.warn("stepevents listener: events not delivered at shutdown", undelivered: left) if left.positive?
    end
  end
end
