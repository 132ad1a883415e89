# seqbench: `make run` runs the quickstart experiment, `make test` the tests.
GO       ?= go
RESULTS  ?= results
# Tests run with a per-package timeout well under CI's budget.
TESTFLAGS ?= -timeout 15m

.PHONY: run test lint build gpu-bundle clean bench

run: build
	./bin/seqbench run --out $(RESULTS)

build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -o bin/seqbench ./cmd/seqbench

# Times every CPU kernel at small sizes (about a minute on 2 cores) into
# $(RESULTS)/bench/; `seqbench regress OLD NEW` compares two such files.
bench: build
	./bin/seqbench bench --suite kernels --device cpu --out $(RESULTS)/bench/cpu-kernels.bench.json

test:
	CGO_ENABLED=0 $(GO) test $(TESTFLAGS) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Builds what a GPU host without Go needs into .gpu/: the binary and the
# test binary of the CUDA backend (then, there: scripts/gpu-check.sh).
gpu-bundle:
	mkdir -p .gpu
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -o .gpu/seqbench ./cmd/seqbench
	CGO_ENABLED=0 $(GO) test -c -trimpath -o .gpu/gpukernels.test ./gpukernels

clean:
	rm -rf bin
