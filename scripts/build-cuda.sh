#!/usr/bin/env bash
# Builds netc with the `cuda` feature (candle's CUDA backend) into target/cuda, on a machine
# with or without a GPU. Without a system CUDA toolkit it uses ../shared/tools/cuda_env.sh,
# which fetches NVIDIA's CUDA 13.0 wheels and makes a stub libcuda to link against.
# A cold build takes about 17 minutes on 2 cores.
#
#   scripts/build-cuda.sh            # then: target/cuda/release/netc train ... --device cuda
#   scripts/build-cuda.sh test       # builds and runs the whole test suite with the feature
#                                    # (tests/cuda.rs: device selection and the CPU fallback)
#
# On a machine without a GPU the binary needs the stub driver at run time:
#   LD_LIBRARY_PATH="$CUDA_RUN_LD_LIBRARY_PATH" target/cuda/release/netc ...
# and every CUDA call then fails with a clear message (that is how device selection and the
# fallback are tested without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1; then
    env_script="${NETC_CUDA_ENV:-../shared/tools/cuda_env.sh}"
    if [ ! -f "$env_script" ]; then
        echo "no nvcc and no $env_script: install the CUDA toolkit (13.0) or set NETC_CUDA_ENV" >&2
        exit 2
    fi
    # The env script is written for an interactive shell: under `set -e` and `pipefail` a
    # harmless failed test inside it (no cudarc source fetched yet) ended this script.
    set +eu +o pipefail
    # shellcheck disable=SC1090
    source "$env_script"
    status=$?
    set -euo pipefail
    [ "$status" -eq 0 ] && [ -n "${CUDA_HOME:-}" ] || { echo "$env_script failed" >&2; exit 2; }
fi
if [ "${1:-}" = test ]; then
    shift
    # Without a GPU the test binaries load the stub driver (every CUDA call fails).
    if ! command -v nvidia-smi >/dev/null 2>&1 && [ -n "${CUDA_RUN_LD_LIBRARY_PATH:-}" ]; then
        export LD_LIBRARY_PATH="$CUDA_RUN_LD_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    exec cargo test --release --features cuda --target-dir target/cuda "$@"
fi
cargo build --release --features cuda --target-dir target/cuda "$@"
echo "built target/cuda/release/netc"
