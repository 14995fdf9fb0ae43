# stepevents — one entry point for building, testing and checking.
# Tests need PostgreSQL: TEST_DATABASE_URL, else a local server on
# 127.0.0.1:5432 (user postgres), else Docker (see README).

GO ?= go
PKGS := ./...
FUZZTIME ?= 10s

.PHONY: all build test test/short generate check verify fmt vet sqlc-diff fuzz bench demo clean

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
	$(GO) test -run '^$$' -fuzz '^FuzzPattern$$' -fuzztime $(FUZZTIME) ./events/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME) ./events/

## bench: Go benchmarks of the hot paths.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

demo: build
	./bin/stepevents demo

clean:
	rm -rf bin
