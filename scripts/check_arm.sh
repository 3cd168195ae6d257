#!/usr/bin/env bash
# The runtime on 64-bit and 32-bit ARM (docs/edge.md), without ARM hardware: user-mode QEMU runs an arm64
# or armhf Debian root.
#   1. build the wheel; install it in a venv inside the root: on arm64 with [tflite] from PyPI's aarch64
#      wheels; on armhf (armv7l) what `pip install vae-digits` gets there, tflite-runtime 2.14, beside
#      Debian's numpy and pillow (a --system-site-packages venv: PyPI has no armv7l numpy wheel);
#   2. install it in an x86 venv at the same versions of the numeric packages;
#   3. scripts/arm_compare.py record, in the root and on x86: vae-generate for every embedded bundle,
#      backend and shipped precision; XNNPACK's share of the ops of every TFLite file; vae-eval of the
#      default bundle; then scripts/arm_compare.py compare prints the table and judges;
#   4. the runtime tests of the numeric paths in the root.
# On arm64 the same again for the lite install (vae-digits-lite: tflite-runtime 2.14 and numpy<2 on Python
# 3.11, no Pillow) in a second venv in the root, against an x86 venv on tflite-runtime at its versions.
# Needs root (debootstrap, chroot, binfmt_misc); installs qemu-user-static, binfmt-support and debootstrap
# when they are missing. The root is cached in $VAE_ARM_CACHE (default /var/cache/vae-digits-ARCH), under a
# name made from its recipe: a root of another recipe, or a half-made one, is made afresh. Its pip cache
# stays in it, so a second run downloads no wheel again.
#
# Usage: scripts/check_arm.sh arm64|armhf [TEST_FILE...]
#   (default tests: those marked numeric in tests/test_runtime.py, test_prior.py and test_engines.py; the
#   lite install also runs tests/test_png.py: PNGs written without Pillow)
# Env: ARM_DIGITS (digits per vae-generate call, default 200), ARM_EVAL_PER_LABEL (default 100),
# ARM_CPU (QEMU's CPU model, default cortex-a72 on arm64, cortex-a7 on armhf).
set -Eeuo pipefail  # -E: the ERR trap names the failed step inside functions too
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off

ARCH=${1:-}
step="start"
trap 'echo "check_arm $ARCH: FAILED: $step (exit $?)" >&2' ERR
say() { step=$1; printf '== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
die() { echo "check_arm $ARCH: FAILED: $*" >&2; exit 1; }

SUITE=bookworm
# tflite-runtime 2.14 has no kernel for the FULLY_CONNECTED version of the dynamic-range files
TFLITE_RUNTIME_OPTIONS=(--may-not-run dynamic)
INCLUDE=python3,python3-venv,ca-certificates
# The emulated CPUs: a Raspberry Pi 4's core (arm64) and a Pi 2's (armhf). Under QEMU's default ("max":
# every newer extension) XNNPACK's int8 and dynamic kernels gave noise on arm64 (PSNR 4 dB against fp32),
# under cortex-a72 the same digits as x86; whether QEMU's emulation or XNNPACK's kernels for those
# extensions are at fault needs real hardware.
case $ARCH in
  arm64)
    QEMU=aarch64 MACHINE=aarch64 CPU=${ARM_CPU:-cortex-a72} VENV_OPTIONS=() TO_INSTALL="[tflite]"
    BACKENDS=onnx,tflite COMPARE_OPTIONS=() ;;
  armhf)
    QEMU=arm MACHINE=armv7l CPU=${ARM_CPU:-cortex-a7} VENV_OPTIONS=(--system-site-packages) TO_INSTALL=""
    INCLUDE=$INCLUDE,python3-numpy,python3-pil
    # tflite-runtime 2.14's armv7l wheel applies no XNNPACK (its own NEON kernels; also under a Pi's
    # /proc/cpuinfo)
    BACKENDS=tflite COMPARE_OPTIONS=("${TFLITE_RUNTIME_OPTIONS[@]}" --without-xnnpack) ;;
  *) echo "usage: scripts/check_arm.sh arm64|armhf [TEST_FILE...]" >&2; exit 2 ;;
esac
shift
CACHE=${VAE_ARM_CACHE:-/var/cache/vae-digits-$ARCH}
DIGITS=${ARM_DIGITS:-200}
PER_LABEL=${ARM_EVAL_PER_LABEL:-100}
EVAL_DATA=tests/data/mnist_small.npz

# By default the runtime tests marked `numeric` (tests/conftest.py): the backends, chunking, static TFLite
# batches, the shipped variants' bounds, the prior's sampling, the interpreter's build. The other runtime
# tests (commands, bad input, refusals, thread safety) test the same Python on any machine, .ci/run runs
# them on x86, and under emulation they cost minutes. Name test files (and options) to run others.
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(-m numeric tests/test_runtime.py tests/test_prior.py tests/test_engines.py)
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and binfmt_misc need it)"

# .ci/run checks both architectures at once: the machine-wide steps (apt, binfmt_misc, the wheel's build
# in the source tree) take turns through this lock
lock=/tmp/vae-digits-check-arm.lock
exec {setup}> "$lock"
flock "$setup"
say "host tools: qemu-user-static, binfmt-support, debootstrap"
if ! command -v "qemu-$QEMU-static" debootstrap update-binfmts >/dev/null; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    qemu-user-static binfmt-support debootstrap
fi
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable "qemu-$QEMU" 2>/dev/null || true  # fails when it is enabled already
grep -qx enabled "/proc/sys/fs/binfmt_misc/qemu-$QEMU" || die "binfmt_misc did not enable qemu-$QEMU"
flock -u "$setup"

say "$ARCH Debian root"
# the Debian mirror apt uses here (deb822 sources or sources.list), else the default one
mirror=$(awk '$1 == "URIs:" || $1 == "deb" {print $2}' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
  2>/dev/null | awk '/\/debian\/?$/ {print; exit}' || true)
mirror=${mirror:-http://deb.debian.org/debian}
recipe="$ARCH minbase $SUITE $INCLUDE $mirror"
root=$CACHE/$SUITE-$ARCH-$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
if [ ! -f "$root/.vae-digits-ready" ]; then
  rm -rf "$CACHE"/*-"$ARCH"-*  # other recipes' roots, or this one half-made
  mkdir -p "$CACHE/debs"
  started=$SECONDS
  # the .debs stay in $CACHE/debs: a new recipe downloads only what it adds
  debootstrap --arch="$ARCH" --variant=minbase --include="$INCLUDE" --cache-dir="$CACHE/debs" "$SUITE" \
    "$root" "$mirror" > "$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"
  printf '%s\n' "$recipe" > "$root/.vae-digits-ready"
  echo "made $root in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
else
  echo "reusing $root"
fi

work=$(mktemp -d)
inside=/tmp/vae-arm  # the scratch directory inside the root
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$work" "${root:?}$inside"
}
trap cleanup EXIT

say "wheel"
# (with a command, flock takes the lock file's path: given a descriptor's number it makes a file of that name)
flock "$lock" python3 -m pip wheel . --no-deps -q -w "$work/dist"
[ "$ARCH" != arm64 ] || flock "$lock" python3 -m pip wheel ./lite --no-deps -q -w "$work/dist"
wheel=$(basename "$work"/dist/vae_digits-*.whl)
rm -rf "${root:?}$inside" && mkdir -p "$root$inside"
cp "$work"/dist/*.whl "$root$inside/"
cp -r tests "$root$inside/"  # a scratch copy of tests/, so that the installed package is what runs
mkdir -p "$root$inside/scripts" "$root$inside/bench"
cp scripts/arm_compare.py "$root$inside/scripts/"
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
# the numeric packages whose versions must be the same on both machines: a difference is the architecture's
numeric='^(numpy|onnxruntime|ai-edge-litert|tflite-runtime)=='
# An x86 venv ($2) with the runtime on tflite-runtime at the numeric versions of the root's venv ($1), as
# where tflite-runtime is the engine (armv7l; the lite install on aarch64): onnxruntime uninstalled.
tflite_runtime_on_x86() {
  in_root "$1/bin/pip freeze --all" | grep -iE "$numeric" > "$work/versions.txt"
  python3 -m venv "$2"
  "$2/bin/pip" install -q -c "$work/versions.txt" "$work/dist/$wheel" tflite-runtime
  "$2/bin/pip" uninstall -q -y onnxruntime
}
# One install's check: record in the root's venv ($2) and in the x86 one ($3), compare (options after $4,
# the backends), then the runtime tests in the root; $1 names the install.
check_install() {
  local name=$1 venv=$2 x86=$3 backends=$4
  shift 4
  say "$name: vae-generate, XNNPACK and vae-eval on $MACHINE"
  in_root "$venv/bin/python scripts/arm_compare.py record $name --digits $DIGITS --per-label $PER_LABEL \
    --data $EVAL_DATA --backends $backends"
  say "$name: the same on x86"
  "$x86/bin/python" scripts/arm_compare.py record "$work/x86-$name" --digits "$DIGITS" \
    --per-label "$PER_LABEL" --data "$EVAL_DATA" --backends "$backends"
  say "$name: $MACHINE against x86"
  "$x86/bin/python" scripts/arm_compare.py compare "$root$inside/$name" "$work/x86-$name" "$@"
  say "$name: runtime tests on $MACHINE: ${tests[*]}"
  in_root "$venv/bin/python -m pytest -q -p no:cacheprovider ${tests[*]}"
  if [ ${#extra_tests[@]} -gt 0 ]; then  # whole files, not only their numeric tests
    say "$name: ${extra_tests[*]} on $MACHINE"
    in_root "$venv/bin/python -m pytest -q -p no:cacheprovider ${extra_tests[*]}"
  fi
}
if [ "$ARCH" = arm64 ]; then
  say "the runtime with [tflite] in an x86 venv, then in the root from PyPI's aarch64 wheels"
  python3 -m venv "$work/x86"
  "$work/x86/bin/pip" install -q "$work/dist/$wheel$TO_INSTALL"
  "$work/x86/bin/pip" freeze | grep -iE "$numeric" > "$root$inside/versions.txt"
fi
if [ "$ARCH" = armhf ]; then
  say "the runtime in the root (tflite-runtime from PyPI, numpy and pillow from Debian), then in an x86 venv"
  : > "$root$inside/versions.txt"
fi
in_root "rm -rf /opt/venv && python3 -m venv ${VENV_OPTIONS[*]} /opt/venv \
  && /opt/venv/bin/pip install -q --no-compile -c versions.txt '$wheel$TO_INSTALL' pytest hypothesis"
in_root "/opt/venv/bin/python -c 'import platform; assert platform.machine() == \"$MACHINE\"'"
[ "$ARCH" != armhf ] || tflite_runtime_on_x86 /opt/venv "$work/x86"
extra_tests=()
check_install "$ARCH" /opt/venv "$work/x86" "$BACKENDS" "${COMPARE_OPTIONS[@]}"

if [ "$ARCH" = arm64 ]; then
  say "lite: vae-digits-lite in a second venv in the root, then an x86 venv at its versions"
  lite_wheel=$(basename "$work"/dist/vae_digits_lite-*.whl)
  in_root "rm -rf /opt/lite && python3 -m venv /opt/lite \
    && /opt/lite/bin/pip install -q --no-compile '$lite_wheel' pytest hypothesis"
  # Debian bookworm's Python 3.11: tflite-runtime 2.14, and no Pillow without the images extra
  in_root "/opt/lite/bin/python -c 'from vae_runtime.backends import tflite_engine as e; \
    assert e() == \"tflite-runtime 2.14.0\", e(); import importlib.util as u; assert not u.find_spec(\"PIL\")'"
  tflite_runtime_on_x86 /opt/lite "$work/x86-lite"
  extra_tests=(tests/test_png.py)
  # tflite-runtime 2.14's aarch64 wheel, like its x86 one, delegates the float files to XNNPACK, not int8
  check_install lite /opt/lite "$work/x86-lite" tflite "${TFLITE_RUNTIME_OPTIONS[@]}" --xnnpack-as-on-x86
fi
echo "check_arm $ARCH: passed in $((SECONDS / 60)) min $((SECONDS % 60)) s"
