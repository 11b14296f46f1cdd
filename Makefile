# strait — build and test entry points. `make test` is what CI runs.
GO      ?= go
RUN_DIR ?= $(CURDIR)/.strait-run

.PHONY: all build test deps vet fmt-check run bench bench-mesh fuzz clean

all: build

# deps installs what the tests need on a fresh Debian machine. Nothing else
# may be installed by hand.
deps:
	./hack/install-deps.sh

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# test runs every test (with the race detector), including the fuzz seed
# corpora. Tests needing root run as root in CI; elsewhere they skip, naming why.
test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 40m ./...

# run starts one strait-apiserver with its embedded etcd (the main job until
# `straitctl demo` exists) and prints how to reach it.
run: build
	$(GO) run ./cmd/strait-apiserver run-local --dir $(RUN_DIR)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./clustermesh/... ./identity/...

# fuzz runs each fuzz target for FUZZTIME (default 20s).
FUZZTIME ?= 20s
fuzz:
	./hack/fuzz-all.sh $(FUZZTIME)

clean:
	rm -rf $(RUN_DIR)

# bench-mesh runs the mesh-wide benchmarks of tools/bench/mesh (≈ 80 s).
bench-mesh:
	$(GO) test -run '^$$' -bench BenchmarkPropagation -benchtime 1x -count 2 ./tools/bench/mesh/
	$(GO) test -run '^$$' -bench BenchmarkWatchesOnEtcd -benchtime 1x -v ./tools/bench/mesh/
