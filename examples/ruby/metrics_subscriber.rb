# frozen_string_literal: true

require_relative "stepevents_subscriber"

module StepEvents
  # MetricsSubscriber counts the events it receives: in total, by step
  # outcome (payload.execution_result.success) and by event name, plus the
  # gap signals. It is safe to read from another thread.
  #
  # Every key is a string, as JSON.parse produces them. The original Ruby
  # subscriber read symbol keys from string-keyed hashes, so `success` was
  # always nil and every event counted as a failure; test/ruby checks the
  # success and failure counts against what Go published.
  class MetricsSubscriber
    def initialize
      @mutex = Mutex.new
      reset!
    end

    # call counts event.
    def call(event)
      success = StepEvents.dig(event, "payload", "execution_result", "success") == true
      name = event["event_name"]
      @mutex.synchronize do
        @received += 1
        success ? @success += 1 : @failure += 1
        @by_name[name] += 1
      end
    end

    # on_gap counts a reconnect of the listener.
    def on_gap(_gap)
      @mutex.synchronize { @gaps += 1 }
    end

    # snapshot returns a copy of the counts, shaped like Go's EventMetrics
    # JSON (events_received, success_events, failure_events, by_event_name)
    # plus gap_signals.
    def snapshot
      @mutex.synchronize do
        { "events_received" => @received, "success_events" => @success, "failure_events" => @failure,
          "by_event_name" => @by_name.dup, "gap_signals" => @gaps }
      end
    end

    # reset! zeroes every count.
    def reset!
      @mutex.synchronize do
        @received = 0
        @success = 0
        @failure = 0
        @gaps = 0
        @by_name = Hash.new(0)
      end
    end
  end
end
