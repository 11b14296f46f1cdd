# strait — build and test entry points. `make test` is what CI runs.
GO      ?= go
RUN_DIR ?= $(CURDIR)/.strait-run

.PHONY: all build bin test test-host test-vm deps vet fmt-check demo demo-down run bench bench-mesh bench-datapath fuzz generate clean
BIN_DIR ?= $(CURDIR)/bin
DEMO_DIR ?= $(CURDIR)/.strait-demo

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

# bin builds every binary into BIN_DIR (straitctl demo finds the others
# beside itself).
bin:
	$(GO) build -o $(BIN_DIR)/ ./cmd/...

# demo is the main job: 2 clusters x 2 nodes x 2 pods in network namespaces,
# connected, traffic from every pod to every remote pod, proof that the
# underlay carried only encrypted packets. DEMO_FLAGS e.g. --keep, --pods 3.
demo: deps bin
	$(BIN_DIR)/straitctl demo --dir $(DEMO_DIR) --bin-dir $(BIN_DIR) $(DEMO_FLAGS)

demo-down: bin
	$(BIN_DIR)/straitctl demo down --dir $(DEMO_DIR)

# test runs every test: the host suites with the race detector (fuzz seed
# corpora included; tests needing root run as root in CI, elsewhere they skip
# naming why), then the kernel VM suites (kernel WireGuard, IPsec).
test: deps fmt-check vet test-host test-vm

test-host:
	$(GO) test -race -count=1 -timeout 40m ./...

# test-vm runs the kernel VM suites inside qemu with Debian's cloud kernel;
# see tools/vmtest/README.md and hack/test-vm.sh.
test-vm:
	./hack/test-vm.sh

# run starts one strait-apiserver with its embedded etcd and prints how to
# reach it.
run: build
	$(GO) run ./cmd/strait-apiserver run-local --dir $(RUN_DIR)

# generate rebuilds the committed bpf2go objects (needs clang, llvm, libbpf-dev).
generate:
	./hack/install-deps.sh --generate
	$(GO) generate ./bpf/...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./clustermesh/... ./identity/...

# fuzz runs each fuzz target for FUZZTIME (default 20s).
FUZZTIME ?= 20s
fuzz:
	./hack/fuzz-all.sh $(FUZZTIME)

clean:
	rm -rf $(RUN_DIR) $(BIN_DIR)

# bench-datapath measures pod-to-remote-pod TCP throughput and RTT through
# strait beside hand-configured wireguard-go and plaintext veth (root).
bench-datapath:
	$(GO) run ./tools/bench/datapath

# bench-mesh runs the mesh-wide benchmarks of tools/bench/mesh (≈ 80 s).
bench-mesh:
	$(GO) test -run '^$$' -bench BenchmarkPropagation -benchtime 1x -count 2 ./tools/bench/mesh/
	$(GO) test -run '^$$' -bench BenchmarkWatchesOnEtcd -benchtime 1x -v ./tools/bench/mesh/
