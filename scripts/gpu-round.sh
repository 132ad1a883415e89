#!/usr/bin/env bash
# The GPU round for the work that waits for a GPU (gpukernels/NOTES.md,
# "Waiting for a GPU"), in parts that each fit one device call. Build the
# bundle from a tree with the parked commits re-applied (they apply to main
# without conflicts), the binaries stripped so that tree + .gpu stays under
# 64 MiB (about 15 + 43 MB):
#
#   git switch -c gpu-round && git revert --no-edit 1caecff bed2228 33cac1c
#   rm -rf .gpu && mkdir .gpu && cp scripts/torch_tfpp.py .gpu/
#   CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o .gpu/seqbench ./cmd/seqbench
#   go test -c -trimpath -ldflags="-s -w" -o .gpu/gpukernels.test ./gpukernels
#   git worktree add -f /tmp/base main && (cd /tmp/base && CGO_ENABLED=0 go build -trimpath \
#     -ldflags="-s -w" -o "$OLDPWD/.gpu/seqbench-base" ./cmd/seqbench)   # the build to compare with
#   git worktree remove --force /tmp/base && git switch main
#
# then on the GPU host, .gpu carried:  PART=X LIM=560 bash scripts/gpu-round.sh
#
#   X  the parked changes' tests first (device-side step, step graph, scan
#      backward v2), whole models against the CPU, attention dropout's
#      conformance, the 130M Mamba-1 step (this build with --profile, the
#      base build), the 24-layer LSTM and GRU in fp32 and bf16 (#14's
#      memory ratio), Mamba-2 and the Transformer, then the bf16
#      conformance suite in what time is left
#   T  the parked changes' tests only (a short call)
#   A  tests: the above, whole models, the bf16 suite, the
#      scan/SSD/conv/permute families, the float32 suite
#   B  the 130M steps (Mamba-1 this/base/v2/eager, Mamba-2 and Transformer
#      this/base) and PyTorch's Transformer++ (torch_tfpp.py)
#   C  the scan kernel v1 against v2, the paper-scale selective-copying step
#      with the graph on and off, generation at the matched sizes
#   D  configs/selective_copy_paper.yaml, as far as the call allows
#   P  Nsight Compute on the selective scan in bf16 and fp32 (why is bf16 no
#      faster, #14 item 3 and #17) and on the flash attention forward:
#      speed of light, memory, compute, occupancy, warp states and
#      instruction mix of each kernel, as text
#   H  the three CPU-size hybrid contrasts (hybrid_mqar_cpu, hybrid_mad_cpu,
#      hybrid_lm_cpu) on the GPU in bf16: the hybrids trained on CUDA in
#      the precision the papers use, beside their CPU float32 results
#   S  the GPT-2 scaling study's first SIZES sizes (default 3) on a corpus
#      made on the host from its Python installation's text (.py, .md,
#      .rst, .txt of the standard library and site-packages, at most 200 MB): configs/scaling_gpt2.yaml with its
#      corpus globs and zip lists cut, so its run ids are the full study's
#      and a later call adds sizes (it resumes from results-S's runs/ when
#      they are carried back in as scaling-runs/)
#
# Each part writes $OUT/results-PART.tgz and prints its summary last; LIM is
# the call's seconds, every step capped to what is left of it.
set -u
P=${PART:-A}
o=r$P; rm -rf $o; mkdir -p $o
b=./.gpu
export SEQBENCH_REQUIRE_GPU=1
S=()
note() { S+=("$*"); echo "== $*"; }
T0=$SECONDS
left() { echo $(( ${LIM:-540} - (SECONDS - T0) )); }
cap() { local w=$1 l; l=$(( $(left) - 15 )); (( l < w )) && w=$l; (( w < 5 )) && w=5; echo $w; }
$b/seqbench devices >$o/devices.txt 2>&1; note "$(grep -m1 -iE 'h100|h200' $o/devices.txt)"
tr130="bench --suite train --device cuda --dtype bf16 --d-model 768 --vocab 50280 --batch 8 --lengths 2048 --repeat 5 --ceilings=false --quiet"
row() { grep -m1 -E '^│ (mamba1|mamba2|transformer) ' "$1" | tr -s ' ' | cut -c1-200; }
# step130 BUILD ARCH LAYERS SECONDS: the 130M training step of ARCH, with
# BUILD one of new (this build, --profile), base (.gpu/seqbench-base), v2
# (SEQBENCH_SCAN_BWD_V2=1) or eager (--graph=false).
step130() {
  local sb=$b/seqbench env="" extra="" s=$SECONDS
  case $1 in
    new) extra=--profile ;;
    base) sb=$b/seqbench-base ;;
    v2) env=SEQBENCH_SCAN_BWD_V2=1 ;;
    eager) extra=--graph=false ;;
  esac
  env $env timeout $(cap $4) $sb $tr130 --archs $2 --n-layers $3 $extra --out $o/$2-$1.bench.json >$o/$2-$1.txt 2>&1
  note "$2 130M $1: exit $? $((SECONDS-s))s $(row $o/$2-$1.txt)"
}
# rnn24 DTYPE SECONDS: the 24-layer LSTM and GRU at the 130M shapes, for
# #14's peak-memory ratio (fp32 against bf16).
rnn24() {
  local s=$SECONDS
  timeout $(cap $2) $b/seqbench bench --suite train --device cuda --dtype $1 --d-model 768 --vocab 50280 --batch 8 --lengths 2048 --repeat 3 --ceilings=false --quiet --archs lstm,gru --n-layers 24 --out $o/rnn24-$1.bench.json >$o/rnn24-$1.txt 2>&1
  note "rnn 24 layers $1: exit $? $((SECONDS-s))s"
  grep -E '^│ (lstm|gru) ' $o/rnn24-$1.txt | tr -s ' ' | cut -c1-200
}
tst() { # name timeout regex
  local s=$SECONDS
  timeout $(cap $2) $b/gpukernels.test -test.v -test.run "$3" >$o/t-$1.log 2>&1
  note "tests $1: exit $? pass $(grep -c -- '--- PASS' $o/t-$1.log) fail $(grep -c -- '--- FAIL' $o/t-$1.log) skip $(grep -c -- '--- SKIP' $o/t-$1.log) $((SECONDS-s))s"
  grep -- '--- FAIL' $o/t-$1.log | head -15
}
if [[ $P == T ]]; then
  tst new $(left) 'TestGPUDeviceStep|TestGPUTrainStepGraph|TestGPUSelectiveScanBwdV2'
fi
if [[ $P == X ]]; then
  tst new 150 'TestGPUDeviceStep|TestGPUTrainStepGraph|TestGPUGraph|TestGPUSelectiveScanBwdV2'
  tst models 60 'TestGPUModels'
  tst drop 40 'TestGPUConformance(Float32|Float64|BFloat16)/^(AttentionDropout|Attention|AttentionTiles)$'
  for v in new base; do step130 $v mamba1 24 75; done
  for d in fp32 bf16; do rnn24 $d 60; done
  step130 new mamba2 24 60
  step130 new transformer 12 60
  tst bf16 $(left) 'TestGPUConformanceBFloat16'
fi
if [[ $P == A ]]; then
  tst new 150 'TestGPUDeviceStep|TestGPUTrainStepGraph|TestGPUGraph|TestGPUSelectiveScanBwdV2'
  tst models 60 'TestGPUModels'
  tst drop 60 'TestGPUConformance(Float32|Float64|BFloat16)/^(AttentionDropout|Attention|AttentionTiles)$'
  tst bf16 170 'TestGPUConformanceBFloat16'
  tst fam 150 'TestGPUSelectiveScan$|TestGPUSelectiveScanBF16|TestGPUSSD$|TestGPUSSDChunked$|TestGPUConv1D|TestGPUPermute|TestGPUEmbedding|TestGPUAdamW'
  tst f32 $(left) 'TestGPUConformanceFloat32'
fi
if [[ $P == B ]]; then
  for v in new base v2 eager; do step130 $v mamba1 24 90; done
  for v in new base; do
    step130 $v mamba2 24 90
    step130 $v transformer 12 90
  done
  timeout $(cap 80) python3 $b/torch_tfpp.py >$o/torch-tfpp.jsonl 2>$o/torch-tfpp.err
  note "torch_tfpp: exit $? $(head -c 300 $o/torch-tfpp.jsonl)"
fi
if [[ $P == C ]]; then
  for v in v1 v2; do
    env=""; [[ $v == v2 ]] && env="SEQBENCH_SCAN_BWD_V2=1"
    s=$SECONDS
    env $env timeout $(cap 60) $b/seqbench bench --suite kernels --device cuda --ops selective_scan --batch 4 --lengths 4096 --repeat 5 --ceilings=false --quiet --out $o/scan-$v.bench.json >$o/scan-$v.txt 2>&1
    note "scan kernels $v: exit $? $((SECONDS-s))s"
  done
  $b/seqbench regress $o/scan-v1.bench.json $o/scan-v2.bench.json >$o/scan-regress.txt 2>&1
  for g in true false; do
    s=$SECONDS
    timeout $(cap 80) $b/seqbench bench --suite train --device cuda --archs mamba1,mamba2 --d-model 64 --n-layers 2 --vocab 16 --batch 64 --lengths 4096 --repeat 5 --ceilings=false --quiet --graph=$g --out $o/sc-$g.bench.json >$o/sc-$g.txt 2>&1
    note "selcopy step graph=$g: exit $? $((SECONDS-s))s"
  done
  s=$SECONDS
  timeout $(cap 200) $b/seqbench bench --suite generate --device cuda --dtype bf16 --archs mamba1,mamba2,transformer --n-layers 24 --matched --batch 1,16,64 --repeat 3 --profile --out $o/generate.bench.json >$o/generate.txt 2>&1
  note "generate: exit $? $((SECONDS-s))s"
  timeout $(cap 60) $b/seqbench-base bench --suite generate --device cuda --dtype bf16 --archs mamba1,mamba2 --n-layers 24 --batch 64 --repeat 3 --out $o/generate-base.bench.json >$o/generate-base.txt 2>&1
  note "generate base b64: exit $?"
fi
if [[ $P == D ]]; then
  s=$SECONDS
  timeout $(cap 600) $b/seqbench sweep run configs/selective_copy_paper.yaml --workers 4 --out $o/runs >$o/sc-paper.log 2>&1
  note "selcopy paper: exit $? $((SECONDS-s))s"
  timeout 30 $b/seqbench report $o/runs/selective-copy-paper >$o/report.log 2>&1
  tail -25 $o/sc-paper.log
  find $o/runs -name '*.ckpt' -o -name '*.safetensors' | xargs -r rm -f
fi
if [[ $P == P ]]; then
  # prof NAME KERNELS DTYPE OPS: one profiled bench call, its details as text.
  prof() {
    local s=$SECONDS
    timeout $(cap 150) ncu --clock-control none --kernel-name "regex:$2" --launch-skip 1 --launch-count 4 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section Occupancy \
      --section LaunchStats --section WarpStateStats --section InstructionStats --section SchedulerStats -f -o $o/$1 \
      $b/seqbench bench --suite kernels --device cuda --dtype $3 --ops $4 --batch 4 --lengths 4096 --repeat 1 --ceilings=false --quiet \
      --out $o/$1.bench.json >$o/$1.log 2>&1
    note "ncu $1: exit $? $((SECONDS-s))s"
    ncu --import $o/$1.ncu-rep --page details >$o/$1.txt 2>&1
    grep -E '^  [a-z_0-9]+|Duration|Memory Throughput|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Executed Ipc A' $o/$1.txt | head -40
  }
  prof scan-bf16 'scan_(chunk_)?(fwd|bwd)' bf16 selective_scan
  prof scan-fp32 'scan_(chunk_)?(fwd|bwd)' fp32 selective_scan
  prof flash-bf16 'flash' bf16 attention
fi
if [[ $P == H ]]; then
  for c in hybrid_mqar_cpu:150 hybrid_mad_cpu:250 hybrid_lm_cpu:150; do
    s=$SECONDS w=${c#*:} c=${c%:*}
    sed 's/^train:$/train:\n  precision: bf16/' configs/$c.yaml >$o/$c-bf16.yaml
    timeout $(cap $w) $b/seqbench sweep run $o/$c-bf16.yaml --device cuda --workers ${WORKERS:-8} --out $o/runs >$o/$c.log 2>&1
    note "$c bf16: exit $? $((SECONDS-s))s $(grep -c '\] ok ' $o/$c.log) ok"
  done
  timeout 30 $b/seqbench mad score $o/runs/hybrid-mad-cpu >$o/mad-score.txt 2>&1
  for e in $o/runs/*; do timeout 30 $b/seqbench report $e >>$o/report.log 2>&1; done
  cat $o/mad-score.txt | tail -8
  find $o/runs -name '*.ckpt' -o -name '*.safetensors' | xargs -r rm -f
fi
if [[ $P == S ]]; then
  s=$SECONDS
  if [[ ! -e corpus/pycorpus_val_000000.bin ]]; then
    rm -rf /tmp/corpus && mkdir -p /tmp/corpus corpus
    lib=$(python3 -c 'import sysconfig as s; p = s.get_paths(); print(p["stdlib"], p["purelib"])')
    find $lib -type f \( -name '*.py' -o -name '*.md' -o -name '*.rst' -o -name '*.txt' \) -size -2M -printf '%s %p\n' |
      sort -u -k2 | awk '{ n += $1; if (n < 2e8) print $2 }' >$o/corpus-files.txt
    xargs -a $o/corpus-files.txt -d '\n' cp --parents -t /tmp/corpus
    note "corpus: $(wc -l <$o/corpus-files.txt) files, $(du -sm /tmp/corpus | cut -f1) MB from $lib"
    timeout $(cap 150) $b/seqbench data prepare --tokenizer gpt2 --text /tmp/corpus --out corpus/pycorpus.bin >$o/prepare.log 2>&1
    note "prepare: exit $? $((SECONDS-s))s $(tail -c 300 $o/prepare.log | tr '\n' ' ')"
  fi
  n=${SIZES:-3}
  python3 - "$n" <<'PY' >$o/scaling.yaml
import re, sys
n = int(sys.argv[1])
s = open("configs/scaling_gpt2.yaml").read()
s = s.replace("configs/data/seqbench_text_gpt2_train_*.bin", "corpus/pycorpus_train_*.bin")
s = s.replace("configs/data/seqbench_text_gpt2_val_*.bin", "corpus/pycorpus_val_*.bin")
zip_ = s[s.index("  zip:"):s.index("slurm:")]
cut = re.sub(r"\[([^\]]*)\]", lambda m: "[" + ", ".join(m.group(1).split(", ")[:n]) + "]", zip_)
print(s.replace(zip_, cut), end="")
PY
  mkdir -p $o/runs && [[ -d scaling-runs ]] && cp -r scaling-runs/. $o/runs/
  # The plan measures every size on the GPU (its predictions against the
  # runs' own times check it) and leaves plan.json, by which the sweep
  # packs runs onto the GPU (unless WORKERS says how many).
  timeout $(cap 150) $b/seqbench sweep plan $o/scaling.yaml --out $o/runs --device cuda --budget $(( $(left) - 60 ))s >$o/plan.txt 2>$o/plan.err
  note "plan: exit $? $(tail -2 $o/plan.txt | tr '\n' ' ')"
  timeout $(cap 600) $b/seqbench sweep run $o/scaling.yaml --workers ${WORKERS:-0} --out $o/runs >$o/scaling.log 2>&1
  note "scaling sweep: exit $? $((SECONDS-s))s"
  timeout 60 $b/seqbench report $o/runs/scaling-gpt2 >$o/report.log 2>&1
  note "report: exit $?"
  grep -E '^\[[0-9]+/' $o/scaling.log | tail -20
  find $o/runs -name '*.ckpt' -o -name '*.safetensors' | xargs -r rm -f
fi
tar czf ${OUT:-.}/results-$P.tgz $o
printf '%s\n' "${S[@]}"
