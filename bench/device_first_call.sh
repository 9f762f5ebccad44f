#!/usr/bin/env bash
# The first device call of a session lent a GPU (issue 23), prepared to fit one call of the device
# tool: the GPU suite with the reference implementation side by side, then the tests only a GPU runs.
#
# Here, once, in the repository root (the archives beside the checkout do not travel by themselves):
#   echo /.device/ >> .git/info/exclude && mkdir -p .device
#   cp ../shared/reference/attentivenas-c4c16f1.tar.gz ../shared/data/cifar10-jpg.tar.gz .device/
# then the device tool's run with command "bash bench/device_first_call.sh", carry [".device"] and
# timeout_s 600. What comes back under $OUT: gpu_suite.json and .md (the table for
# docs/performance.md), suite.log, gpu_tests.log, device.txt. Extra arguments go to the suite
# (`--small --device cpu` runs the same steps on a CPU in a minute); REFERENCE and DATA name the
# archives elsewhere (tests/test_benches.py runs it so, on ../shared), PYTHON the interpreter.
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}  # the device's plain python3 is the one that holds PyTorch
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi") | tee "$out/device.txt"
# sections start until 330 s: the last one, then the tests, end inside the call's 600 s
"$python" bench/gpu_suite.py --reference "${REFERENCE:-.device/attentivenas-c4c16f1.tar.gz}" \
    --data "${DATA:-.device/cifar10-jpg.tar.gz}" --out "$out" --deadline-s 330 "$@" 2>&1 | tee "$out/suite.log"
suite=${PIPESTATUS[0]}
# CUDA graphs, PyTorch's own depthwise kernel, bf16 channels_last against the extracted model
timeout 150 "$python" -m pytest -q -p no:cacheprovider -m gpu -rs \
    tests/test_fixed_graphs.py tests/test_conv_kernels.py tests/test_supernet.py 2>&1 | tee "$out/gpu_tests.log"
tests=${PIPESTATUS[0]}
echo "gpu_suite exit $suite, gpu tests exit $tests"
exit $(( suite != 0 ? suite : tests ))
