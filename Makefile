# stepevents — one entry point for building, testing and checking.
# Tests need PostgreSQL: TEST_DATABASE_URL, else a local server on
# 127.0.0.1:5432 (user postgres), else Docker (see README).

GO ?= go
PKGS := ./...
FUZZTIME ?= 10s

.PHONY: all build run demo bench test generate check verify fmt vet sqlc-diff fuzz clean

all: check test

build:
	$(GO) build -o bin/stepevents ./cmd/stepevents

## test: every test, with the race detector.
test:
	$(GO) test -race -count=1 $(PKGS)

## generate: regenerate db/ from queries/ and migrations/ with the pinned sqlc.
generate:
	$(GO) tool sqlc generate

## check (alias verify): formatting, vet and generated code in sync.
check: fmt vet sqlc-diff
verify: check

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

sqlc-diff:
	$(GO) tool sqlc diff

## fuzz: run each fuzz target for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./events/template/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $(FUZZTIME) ./events/template/
	$(GO) test -run '^$$' -fuzz '^FuzzPattern$$' -fuzztime $(FUZZTIME) ./events/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME) ./events/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeStoredEvent$$' -fuzztime $(FUZZTIME) ./events/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeStepRow$$' -fuzztime $(FUZZTIME) ./events/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendEvent$$' -fuzztime $(FUZZTIME) ./events/

## bench: Go benchmarks of the hot paths, then the end-to-end side-by-side bench (see BENCHMARKS.md).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
BENCH_FLAGS ?=
# The bench line is not echoed: it holds the URL, password included.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./events/...
	@./bin/stepevents bench --database-url '$(BENCH_DATABASE_URL)' $(BENCH_FLAGS)

## demo: the main job — a batch of orders through the runner, with subscribers and a summary.
demo: build
	./bin/stepevents demo

## run: one order through every step with the CLI, step by step. It works in its own
## database, RUN_DATABASE_URL (created with psql when missing), given to every command
## with --database-url: nothing is exported, so other targets (demo) never see it.
RUN_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/stepevents_run?sslmode=disable
# The run database's name, and the URL of the same server's postgres database.
run_db_name = $(shell printf '%s' '$(RUN_DATABASE_URL)' | sed -E 's#^[^?]*/([^/?]*).*$$#\1#')
run_admin_url = $(shell printf '%s' '$(RUN_DATABASE_URL)' | sed -E 's#^([^?]*/)[^/?]*#\1postgres#')
RUN_CLI = ./bin/stepevents --database-url '$(RUN_DATABASE_URL)'
run: build
	@case '$(run_db_name)' in ''|*[@:/]*) echo "RUN_DATABASE_URL must name its database: postgres://user@host:port/DATABASE" >&2; exit 2;; esac
	@psql '$(run_admin_url)' -qtAc "SELECT 1 FROM pg_database WHERE datname = '$(run_db_name)'" | grep -q 1 || \
	  psql '$(run_admin_url)' -qc 'CREATE DATABASE "$(run_db_name)"'
	@$(RUN_CLI) migrate up
	@$(RUN_CLI) template apply test/templates/good/domain_event_publishing.yaml
	@task=$$($(RUN_CLI) task create domain_events/domain_event_publishing \
	    --context '{"order_id":"8c8a1f8e-6f57-4b0e-9d1c-2f8b8a0e4b11","customer_id":"c-1","amount":42.5}') && \
	echo "task $$task" && \
	steps=$$(psql '$(RUN_DATABASE_URL)' -qtAc "SELECT step_uuid FROM stepevents.workflow_steps WHERE task_uuid = '$$task' ORDER BY position") && \
	for s in $$steps; do \
	  $(RUN_CLI) step start $$s >/dev/null && \
	  $(RUN_CLI) step complete $$s --result '{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z","amount":42.5,"channel":"email"}' || exit 1; \
	done && $(RUN_CLI) task show $$task

clean:
	rm -rf bin
