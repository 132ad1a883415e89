#!/usr/bin/env bash
# One round of GPU checks on a GPU host, from binaries built elsewhere by
# `make gpu-bundle` (the host needs no Go toolchain): the GPU conformance
# tests, the CLI on the GPU, the selective-copying experiment, and the
# kernel benchmarks twice (compared with regress), and (torch, not in all)
# the PyTorch cross-check of the Transformer on small MQAR. Everything lands
# in one archive, $OUT/gpu-check.tgz (or ./gpu-check.tgz); summaries print
# last.
#
# rnn (not in all): the RNN tests, then the LSTM/GRU kernel bench twice
# with the persistent kernels (the default) and once per step
# (SEQBENCH_RNN_PERSISTENT=0), the pair compared with regress.
#
# scan (not in all): the selective-scan tests, the scan bench at the
# anchor shapes (B 4, D 2048, N 16, L 4096 and 16384) with this build and,
# when .gpu/seqbench-base exists (a build of the revision to compare with),
# with that one, compared with regress; then the Mamba-1 training step at
# the 130M setting and at selective copying's paper scale, both builds.
#
# nccl (not in all): the NCCL communicator's GPU tests (dist_nccl.test): a
# world of one rank on device 0, and two ranks where two GPUs are present.
#
# step (not in all): the 130M training steps (bf16, B 8, L 2048) of the
# Transformer++ (12 layers), Mamba-1 and Mamba-2 (24) with --profile, and
# PyTorch's Transformer++ step on the same card (scripts/torch_tfpp.py) for
# the ratio; then generation at the papers' matched sizes (--matched:
# 24 Mamba layers, 12 Transformer layers; prompt 2048, 128 new tokens, batch
# 1, 16, 64) with --profile, its throughput against the Transformer's under
# the table.
#
#   scripts/gpu-check.sh [all|tests|train|bench|torch|rnn|scan|nccl|step]
set -u
what=${1:-all}
dest=${OUT:-.}
out=gpu-check
rm -rf "$out" && mkdir -p "$out"
bin=./.gpu
export SEQBENCH_REQUIRE_GPU=1
summary=()
note() { summary+=("$*"); echo "== $*"; }

"$bin/seqbench" devices | tee "$out/devices.txt"

if [[ $what == all || $what == tests ]]; then
  start=$SECONDS
  "$bin/gpukernels.test" -test.v -test.run GPU >"$out/gpu-tests.log" 2>&1
  rc=$?
  pass=$(grep -c -- '--- PASS' "$out/gpu-tests.log")
  fail=$(grep -c -- '--- FAIL' "$out/gpu-tests.log")
  skip=$(grep -c -- '--- SKIP' "$out/gpu-tests.log")
  note "gpukernels.test: exit $rc, $pass passed, $fail failed, $skip skipped, $((SECONDS - start)) s"
  grep -- '--- FAIL' "$out/gpu-tests.log" | head -20
fi

if [[ $what == all || $what == train ]]; then
  start=$SECONDS
  "$bin/seqbench" run configs/selective_copy_cpu.yaml --device cuda --out results >"$out/selective-copy.log" 2>&1
  note "selective_copy_cpu.yaml on cuda: exit $?, $((SECONDS - start)) s"
  tail -14 "$out/selective-copy.log"
  cp -r results "$out/results"
fi

if [[ $what == all || $what == bench ]]; then
  for i in 1 2; do
    start=$SECONDS
    "$bin/seqbench" bench --suite kernels --device cuda --repeat 10 --out "$out/kernels$i.bench.json" >"$out/bench$i.txt" 2>&1
    note "bench kernels run $i: exit $?, $((SECONDS - start)) s"
  done
  "$bin/seqbench" regress "$out/kernels1.bench.json" "$out/kernels2.bench.json" >"$out/regress.txt" 2>&1
  note "regress run1 vs run2: exit $? ($(grep -c slower "$out/regress.txt") slower rows)"
fi

if [[ $what == rnn ]]; then
  "$bin/gpukernels.test" -test.v -test.run 'TestGPURNN|TestGPUConformanceFloat32/(LSTM|GRU)' >"$out/rnn-tests.log" 2>&1
  note "RNN tests: exit $?, $(grep -c -- '--- PASS' "$out/rnn-tests.log") passed, $(grep -c -- '--- FAIL' "$out/rnn-tests.log") failed"
  for run in persistent-1 persistent-2 steps; do
    start=$SECONDS
    persistent=1
    [[ $run == steps ]] && persistent=0
    SEQBENCH_RNN_PERSISTENT=$persistent "$bin/seqbench" bench --suite kernels --device cuda --ops lstm,gru --repeat 10 \
      --quiet --out "$out/rnn-$run.bench.json" >"$out/rnn-$run.txt" 2>&1
    note "bench lstm,gru $run: exit $?, $((SECONDS - start)) s"
  done
  "$bin/seqbench" regress "$out/rnn-persistent-1.bench.json" "$out/rnn-persistent-2.bench.json" >"$out/rnn-regress.txt" 2>&1
  note "regress persistent-1 vs persistent-2: exit $?"
  "$bin/seqbench" regress "$out/rnn-steps.bench.json" "$out/rnn-persistent-1.bench.json" >"$out/rnn-vs-steps.txt" 2>&1
  note "persistent vs per step: $(grep -c '│ slower' "$out/rnn-vs-steps.txt") rows slower, $(grep -c '│ faster' "$out/rnn-vs-steps.txt") faster"
fi

if [[ $what == scan ]]; then
  "$bin/gpukernels.test" -test.v -test.run 'TestGPUSelectiveScan' >"$out/scan-tests.log" 2>&1
  note "scan tests: exit $?, $(grep -c -- '--- PASS' "$out/scan-tests.log") passed, $(grep -c -- '--- FAIL' "$out/scan-tests.log") failed"
  builds=(new)
  [[ -x $bin/seqbench-base ]] && builds+=(base)
  for v in "${builds[@]}"; do
    sb="$bin/seqbench"
    [[ $v == base ]] && sb="$bin/seqbench-base"
    "$sb" bench --suite kernels --device cuda --ops selective_scan --batch 4 --lengths 4096,16384 --repeat 10 \
      --quiet --out "$out/scan-$v.bench.json" >"$out/scan-$v.txt" 2>&1
    note "bench selective_scan ($v): exit $?"
    "$sb" bench --suite train --device cuda --archs mamba1 --d-model 768 --n-layers 24 --vocab 50280 --batch 8 \
      --lengths 2048 --repeat 5 --ceilings=false --quiet --out "$out/train130m-$v.bench.json" >"$out/train130m-$v.txt" 2>&1
    note "train step mamba1 130M ($v): $(grep mamba1 "$out/train130m-$v.txt" | head -1)"
    "$sb" bench --suite train --device cuda --archs mamba1 --d-model 64 --n-layers 2 --vocab 16 --batch 64 \
      --lengths 4096 --repeat 5 --ceilings=false --quiet --out "$out/trainsc-$v.bench.json" >"$out/trainsc-$v.txt" 2>&1
    note "train step mamba1 selective copying ($v): $(grep mamba1 "$out/trainsc-$v.txt" | head -1)"
  done
  if [[ -f $out/scan-base.bench.json ]]; then
    "$bin/seqbench" regress "$out/scan-base.bench.json" "$out/scan-new.bench.json" >"$out/scan-regress.txt" 2>&1
    note "scan new vs base: $(grep -c '│ faster' "$out/scan-regress.txt") rows faster, $(grep -c '│ slower' "$out/scan-regress.txt") slower"
  fi
fi

if [[ $what == nccl ]]; then
  "$bin/dist_nccl.test" -test.v -test.run 'TestGPUNCCL' >"$out/nccl-tests.log" 2>&1
  note "NCCL tests: exit $?, $(grep -c -- '--- PASS' "$out/nccl-tests.log") passed, $(grep -c -- '--- FAIL' "$out/nccl-tests.log") failed, $(grep -c -- '--- SKIP' "$out/nccl-tests.log") skipped"
  grep -E -- '--- (FAIL|SKIP)|NCCL [0-9]' "$out/nccl-tests.log" | head -20
fi

if [[ $what == step ]]; then
  train="bench --suite train --device cuda --dtype bf16 --d-model 768 --vocab 50280 --batch 8 --lengths 2048 --repeat 5 --profile"
  for a in transformer:12 mamba1:24 mamba2:24; do
    start=$SECONDS
    "$bin/seqbench" $train --archs "${a%:*}" --n-layers "${a#*:}" --out "$out/train-${a%:*}.bench.json" >"$out/train-${a%:*}.txt" 2>&1
    note "train step ${a%:*}: exit $?, $((SECONDS - start)) s, $(grep -m1 -o '[0-9.e+]* tokens/s' "$out/train-${a%:*}.txt")"
  done
  python3 scripts/torch_tfpp.py >"$out/torch-tfpp.jsonl" 2>"$out/torch-tfpp.err"
  note "torch_tfpp.py: exit $?, $(cat "$out/torch-tfpp.jsonl")"
  start=$SECONDS
  "$bin/seqbench" bench --suite generate --device cuda --dtype bf16 --archs mamba1,mamba2,transformer --n-layers 24 --matched \
    --batch 1,16,64 --repeat 3 --profile --out "$out/generate.bench.json" >"$out/generate.txt" 2>&1
  note "generate: exit $?, $((SECONDS - start)) s"
  grep -A12 'against the transformer' "$out/generate.txt"
fi

if [[ $what == torch ]]; then
  start=$SECONDS
  python3 scripts/torch_mqar_check.py >"$out/torch-mqar.log" 2>&1
  note "torch_mqar_check.py: exit $?, $((SECONDS - start)) s, last: $(tail -1 "$out/torch-mqar.log")"
fi

tar czf "$dest/gpu-check.tgz" "$out"
printf '%s\n' "${summary[@]}"
