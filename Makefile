# seqbench: `make run` runs the quickstart experiment, `make test` the tests.
GO       ?= go
RESULTS  ?= results
# Tests run with a per-package timeout well under CI's budget.
TESTFLAGS ?= -timeout 15m

.PHONY: run test lint build gpu-bundle clean bench fuzz

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

# Fuzzes every parser of outside input for FUZZTIME each (go test -fuzz
# takes one target of one package at a time). Without minimisation, so
# that the time goes to new inputs; a crasher lands in the package's
# testdata/fuzz/, to be fixed and kept as a seed. In plain `make test` the
# seeds run as ordinary tests.
FUZZTIME ?= 3s
FUZZ_TARGETS = ./safetensors:FuzzRead ./data:FuzzParse ./sweep:FuzzParse ./bench:FuzzParse \
	./reports:FuzzParseBench ./reports:FuzzLoadRun ./train:FuzzLoadCheckpoint ./tasks:FuzzCopyConfig
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} $${t##*:}"; \
		CGO_ENABLED=0 $(GO) test $${t%%:*} -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 0; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Builds what a GPU host without Go needs into .gpu/: the binary and the
# test binaries of the CUDA backend and of NCCL's communicator (then,
# there: scripts/gpu-check.sh).
gpu-bundle:
	mkdir -p .gpu
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -o .gpu/seqbench ./cmd/seqbench
	CGO_ENABLED=0 $(GO) test -c -trimpath -o .gpu/gpukernels.test ./gpukernels
	CGO_ENABLED=0 $(GO) test -c -trimpath -o .gpu/dist_nccl.test ./dist/nccl

clean:
	rm -rf bin
