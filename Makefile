# seqbench: `make run` runs the quickstart experiment, `make test` the tests.
GO       ?= go
RESULTS  ?= results
# Tests run with a per-package timeout well under CI's budget.
TESTFLAGS ?= -timeout 15m

.PHONY: run test lint build gpu-bundle clean

run: build
	./bin/seqbench run --out $(RESULTS)

build:
	CGO_ENABLED=0 $(GO) build -o bin/seqbench ./cmd/seqbench

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
