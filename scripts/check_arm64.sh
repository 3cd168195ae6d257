#!/usr/bin/env bash
# The runtime on aarch64 (docs/edge.md), without ARM hardware: user-mode QEMU runs an arm64 Debian root.
#   1. build the wheel; install it with [tflite] in an x86 venv and, from PyPI's aarch64 wheels at the
#      same versions, in a venv inside the root;
#   2. in the root, scripts/arm64_compare.py record: vae-generate for every embedded bundle, backend and
#      shipped precision; XNNPACK's share of the ops of every TFLite file; vae-eval of the default bundle;
#   3. the same record on x86, and scripts/arm64_compare.py compare prints the table and judges;
#   4. the runtime tests in the root.
# Needs root (debootstrap, chroot, binfmt_misc); installs qemu-user-static, binfmt-support and debootstrap
# when they are missing. The root is cached in $VAE_ARM64_CACHE (default /var/cache/vae-digits-arm64),
# under a name made from its recipe: a root of another recipe, or a half-made one, is made afresh.
#
# Usage: scripts/check_arm64.sh [TEST_FILE...]   (default: tests/test_runtime.py tests/test_prior.py, less one stress test)
# Env: ARM64_DIGITS (digits per vae-generate call, default 200), ARM64_EVAL_PER_LABEL (default 100),
# ARM64_CPU (QEMU's CPU model, default cortex-a72).
set -Eeuo pipefail  # -E: the ERR trap names the failed step inside functions too
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off

SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
CACHE=${VAE_ARM64_CACHE:-/var/cache/vae-digits-arm64}
DIGITS=${ARM64_DIGITS:-200}
PER_LABEL=${ARM64_EVAL_PER_LABEL:-100}
EVAL_DATA=tests/data/mnist_small.npz
# The emulated CPU: a Raspberry Pi 4's core. Under QEMU's default ("max": every newer extension) XNNPACK's
# int8 and dynamic kernels gave noise (PSNR 4 dB against fp32), under cortex-a72 the same digits as x86;
# whether QEMU's emulation or XNNPACK's kernels for those extensions are at fault needs real hardware.
CPU=${ARM64_CPU:-cortex-a72}
step="start"
trap 'echo "check_arm64: FAILED: $step (exit $?)" >&2' ERR
say() { step=$1; printf '== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
die() { echo "check_arm64: FAILED: $*" >&2; exit 1; }

# By default the runtime tests of the numeric paths, which differ by architecture: the backends, chunking,
# static TFLite batches, the shipped variants' bounds, the prior's sampling. The other runtime tests of
# .ci/run (commands, bad input, fuzzing) test the same Python on any machine, .ci/run runs them on x86, and
# under emulation each command they start costs half a minute or more. Name test files to run others.
tests=("$@")
# The 8-thread stress test checks the same Python's thread safety that x86 checks, and costs ten minutes
# under emulation: deselected here.
[ ${#tests[@]} -gt 0 ] || tests=(tests/test_runtime.py tests/test_prior.py
  --deselect=tests/test_runtime.py::test_8_threads_x_200_calls_equal_serial_results)
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and binfmt_misc need it)"

say "host tools: qemu-user-static, binfmt-support, debootstrap"
if ! command -v qemu-aarch64-static debootstrap update-binfmts >/dev/null; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    qemu-user-static binfmt-support debootstrap
fi
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true  # fails when it is enabled already
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "binfmt_misc did not enable qemu-aarch64"

say "arm64 Debian root"
# the Debian mirror apt uses here (deb822 sources or sources.list), else the default one
mirror=$(awk '$1 == "URIs:" || $1 == "deb" {print $2}' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
  2>/dev/null | awk '/\/debian\/?$/ {print; exit}' || true)
mirror=${mirror:-http://deb.debian.org/debian}
recipe="arm64 minbase $SUITE $INCLUDE $mirror"
root=$CACHE/$SUITE-arm64-$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
if [ ! -f "$root/.vae-digits-ready" ]; then
  rm -rf "$CACHE"/*-arm64-*  # other recipes' roots, or this one half-made
  mkdir -p "$CACHE"
  started=$SECONDS
  debootstrap --arch=arm64 --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$mirror" \
    > "$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"
  printf '%s\n' "$recipe" > "$root/.vae-digits-ready"
  echo "made $root in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
else
  echo "reusing $root"
fi

work=$(mktemp -d)
inside=/tmp/vae-arm64  # the scratch directory inside the root
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$work" "${root:?}$inside"
}
trap cleanup EXIT

say "wheel, and the runtime with [tflite] in an x86 venv"
python3 -m pip wheel . --no-deps -q -w "$work/dist"
wheel=$(basename "$work"/dist/vae_digits-*.whl)
python3 -m venv "$work/x86"
"$work/x86/bin/pip" install -q "$work/dist/$wheel[tflite]"
# the same versions of the numeric packages on both machines: a difference is the architecture's
"$work/x86/bin/pip" freeze | grep -iE '^(numpy|onnxruntime|ai-edge-litert|pillow)==' > "$work/versions.txt"

say "the runtime with [tflite] in the arm64 root, from PyPI's aarch64 wheels"
rm -rf "${root:?}$inside" && mkdir -p "$root$inside"
cp "$work/dist/$wheel" "$work/versions.txt" "$root$inside/"
cp -r tests "$root$inside/"  # a scratch copy of tests/, so that the installed package is what runs
mkdir -p "$root$inside/scripts" "$root$inside/bench"
cp scripts/arm64_compare.py "$root$inside/scripts/"
cp bench/run.py "$root$inside/bench/"
# cpuinfo (in onnxruntime and XNNPACK) reads the CPU list from /sys: without it XNNPACK stays off, and the
# host's sysfs crashes it under QEMU; so the root gets the list alone.
mkdir -p "$root/sys/devices/system/cpu"
echo "0-$(( $(nproc) - 1 ))" | tee "$root/sys/devices/system/cpu/possible" > "$root/sys/devices/system/cpu/present"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca-certificates.crt"
mount -t proc proc "$root/proc"
in_root() {
  chroot "$root" /usr/bin/env -i QEMU_CPU="$CPU" HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off \
    PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-60}" ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} \
    /bin/bash -euo pipefail -c "cd $inside && $1"
}
in_root "rm -rf /opt/venv && python3 -m venv /opt/venv \
  && /opt/venv/bin/pip install -q --no-compile -c versions.txt '$wheel[tflite]' pytest hypothesis"
in_root "/opt/venv/bin/python -c 'import platform; assert platform.machine() == \"aarch64\"'"

say "vae-generate, XNNPACK and vae-eval on aarch64"
in_root "/opt/venv/bin/python scripts/arm64_compare.py record arm --digits $DIGITS --per-label $PER_LABEL \
  --data $EVAL_DATA"

say "the same on x86"
"$work/x86/bin/python" scripts/arm64_compare.py record "$work/x86-record" --digits "$DIGITS" \
  --per-label "$PER_LABEL" --data "$EVAL_DATA"

say "aarch64 against x86"
"$work/x86/bin/python" scripts/arm64_compare.py compare "$root$inside/arm" "$work/x86-record"

say "runtime tests on aarch64: ${tests[*]}"
in_root "/opt/venv/bin/python -m pytest -q -p no:cacheprovider ${tests[*]}"
echo "check_arm64: passed in $((SECONDS / 60)) min $((SECONDS % 60)) s"
