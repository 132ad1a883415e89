# seqbench: `make run` runs the quickstart experiment, `make test` the tests.
GO       ?= go
RESULTS  ?= results
# Tests run with a per-package timeout well under CI's budget.
TESTFLAGS ?= -timeout 15m

.PHONY: run test lint build gpu-bundle clean bench

run: build
	./bin/seqbench run --out $(RESULTS)

build:
	CGO_ENABLED=0 $(GO) build -o bin/seqbench ./cmd/seqbench

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

# Builds the binary and the GPU test binaries into .gpu/ for a GPU host.
gpu-bundle:
	../shared/tools/gpu-bundle

clean:
	rm -rf bin
