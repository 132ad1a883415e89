#!/usr/bin/env bash
# Compiles every kernel family with NVRTC on a machine without a GPU: a
# compile check (and, with -v, ptxas' registers, stack and spills of each
# kernel) that costs no GPU time. It installs Debian's libnvrtc (CUDA 11.8,
# from the non-free component; root and Debian's package lists needed) and
# points the CUDA loader at it through SEQBENCH_CUDA_LIB_DIR, in a private
# folder, so nothing else on the machine finds it. CUDA 11.8 compiles for
# sm_90 as the GPU host's NVRTC 13 does, but its diagnostics can differ:
# the GPU host's compile test stays the one that counts.
#
#   scripts/nvrtc-local.sh [-v] [FAMILY-REGEX]     e.g. scripts/nvrtc-local.sh -v selective_scan
set -euo pipefail
cd "$(dirname "$0")/.."
verbose=0
if [[ ${1:-} == -v ]]; then verbose=1; shift; fi
family=${1:-.}
lib=/usr/lib/x86_64-linux-gnu/libnvrtc.so.11.2
if [[ ! -e $lib ]]; then
  if [[ ! -e /etc/apt/sources.list.d/debian-non-free.sources ]]; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      >/etc/apt/sources.list.d/debian-non-free.sources
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnvrtc11.2 libnvrtc-builtins11.8 >/dev/null
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ln -s "$lib" "$dir/libnvrtc.so"
ln -s /usr/lib/x86_64-linux-gnu/libnvrtc-builtins.so.11.8 "$dir/"
export SEQBENCH_CUDA_LIB_DIR=$dir SEQBENCH_PTXAS_VERBOSE=$verbose
if [[ $verbose == 1 ]]; then
  CGO_ENABLED=0 go test ./gpukernels -count=1 -v -run "TestGPUKernelSourcesCompile/$family" |
    grep -E '^\s+--- |Compiling entry|registers|spill' | sed 's/^ *//'
else
  CGO_ENABLED=0 go test ./gpukernels -count=1 -v -run "TestGPUKernelSourcesCompile/$family" | grep -E '^\s*--- |^(ok|FAIL)'
fi
