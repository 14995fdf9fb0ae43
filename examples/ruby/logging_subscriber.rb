# frozen_string_literal: true

require_relative "stepevents_subscriber"

module StepEvents
  # LoggingSubscriber logs one structured line per event with its name, id,
  # task, step and namespace (the Go example's slog attributes), and a
  # warning on every gap. Payloads stay out of the logs: they may hold
  # business data.
  class LoggingSubscriber
    # logger: a JSONLogger (or anything with #info/#warn taking a message
    # and keyword attributes); prefix starts every message.
    def initialize(logger: JSONLogger.new($stdout), prefix: "ruby")
      @logger = logger
      @prefix = prefix
    end

    # call logs event, read with string keys as JSON.parse gives them.
    def call(event)
      @logger.info("#{@prefix}: event received",
                   event_name: event["event_name"],
                   event_id: event["event_id"],
                   task_uuid: StepEvents.dig(event, "metadata", "task_uuid"),
                   step_name: StepEvents.dig(event, "metadata", "step_name"),
                   namespace: StepEvents.dig(event, "metadata", "namespace"))
    end

    # on_gap warns that fast events may have been lost while disconnected.
    def on_gap(gap)
      @logger.warn("#{@prefix}: gap in fast events; events sent while disconnected are lost", **gap.to_json_hash.transform_keys(&:to_sym))
    end
  end
end
