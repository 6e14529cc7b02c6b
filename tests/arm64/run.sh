#!/usr/bin/env bash
# emocam on an emulated Raspberry Pi OS userland, compared with the same runs on this machine.
#
#   sudo bash tests/arm64/run.sh            the bundled sample clip
#   sudo bash tests/arm64/run.sh CLIP       ... and CLIP, any video file OpenCV reads
#
# As root on Debian 12 x86_64: installs qemu-user-static, binfmt-support, debootstrap and the
# mosquitto clients if missing, enables qemu-aarch64 in binfmt_misc, builds (once, cached in
# $ARM64_CACHE) a Debian bookworm arm64 root with python3, python3-venv, mosquitto, systemd, procps,
# then in a throw-away copy of it, as a Pi user would:
#   - runs this checkout's systemd/install.sh (systemd is not PID 1 there: it must say what to
#     run on first boot), checks the unit with systemd-analyze verify, checks that the service
#     user reaches a camera node of the video group, runs the installer again (no rebuild);
#   - runs `emocam run` as the service user on each clip, against the root's own mosquitto, and
#     once more with a tracker that reports every frame (raw per-frame probabilities);
#   - uninstalls.
# The same runs on x86 (a venv with the same package versions) go to the same broker, and
# tests/arm64/compare.py compares the events: same types, face ids, emotions, seq and media_s;
# confidence and scores within 0.02, boxes within 0.01 of the frame, per-frame probabilities
# within 0.06. The last line printed is the verdict, "arm64 vs x86: ..."; exit 1 on a mismatch
# or a failure. Where emulation cannot work (not root, not x86_64 Debian, an unprivileged
# container without binfmt_misc) it prints "arm64 vs x86: skipped: WHY" and exits 0.
#
# Downloads happen here, never in pytest: the Debian mirror (debootstrap) and PyPI (aarch64
# wheels, fetched by the host's pip; the root installs from them offline).
#
# Environment: ARM64_CACHE (default /var/cache/emocam-arm64), ARM64_CPU (cortex-a72, a Pi 4;
# cortex-a76, a Pi 5), ARM64_MIRROR (default http://deb.debian.org/debian), ARM64_SOURCE (the
# emocam tree to install, default this checkout), ARM64_KEEP=1 keeps the work folder,
# ARM64_STEP_LIMIT (seconds one step may take, default 1200), ARM64_TOLERANCE_SCORE / _BOX /
# _FRAME override the tolerances above. It runs at nice 19.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly HERE=$REPO/tests/arm64
SOURCE=$(realpath "${ARM64_SOURCE:-$REPO}")
readonly SOURCE
readonly CACHE=${ARM64_CACHE:-/var/cache/emocam-arm64}
readonly CPU=${ARM64_CPU:-cortex-a72}
readonly MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
readonly SUITE=bookworm
# What Raspberry Pi OS Lite has and the test needs; procps is the unit's /bin/kill (ExecReload).
readonly DEBS=python3,python3-venv,mosquitto,systemd,procps
readonly HOST_DEBS=(qemu-user-static binfmt-support debootstrap mosquitto mosquitto-clients python3-venv)
# Bump when the recipe of the cached root or wheels changes in a way the keys below do not see.
readonly RECIPE=1
# qemu 7.2's default CPU ("max") emulates an Arm extension no Pi has and gets int8 results wrong.
export QEMU_CPU=$CPU

WORK=
ROOTFS=
BUILDING=
MOUNTS=()
PIDS=()
T0=$SECONDS

say() {
    printf '==> [%3ds] %s\n' "$((SECONDS - T0))" "$*"
}

# kill_rooted_in DIR: SIGKILL every process whose root directory is DIR or below it (what runs
# chrooted there holds its mounts).
kill_rooted_in() {
    local proc
    for proc in /proc/[0-9]*; do
        case $(readlink "$proc/root" 2>/dev/null) in
            "$1" | "$1"/*) kill -9 "${proc#/proc/}" 2>/dev/null || true ;;
        esac
    done
}

# remove_tree DIR: rm -rf DIR, after stopping what still runs with its root inside DIR and
# unmounting what is mounted below it, deepest first. An interrupted debootstrap leaves proc and
# sys mounted in its half-built root, and rm cannot delete a live /proc: without this, every run
# after one that was cut short failed at "rm: cannot remove .../proc/...".
remove_tree() {
    local dir mount mounts
    [[ -e $1 ]] || return 0
    dir=$(realpath "$1")
    kill_rooted_in "$dir"
    # Field 5 of mountinfo is the mount point; sorted in reverse, a mount comes before its parent.
    mapfile -t mounts < <(awk -v dir="$dir" '$5 == dir || index($5, dir "/") == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r)
    for mount in "${mounts[@]}"; do
        umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
    done
    rm -rf "$dir"
}

# Stop what this script started and undo its mounts, newest first; safe to call twice.
cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    # Anything still running inside this run's own root (a run cut short) would hold its mounts.
    if [[ -n $ROOTFS ]]; then
        kill_rooted_in "$ROOTFS"
        ROOTFS=
    fi
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
    done
    MOUNTS=()
    # A root that debootstrap did not finish (a run cut short, a step over its time limit).
    if [[ -n $BUILDING ]]; then
        remove_tree "$BUILDING"
        BUILDING=
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ ${ARM64_KEEP:-0} == 1 ]]; then
            printf '==> kept %s\n' "$WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    WORK=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skip() {
    cleanup
    printf 'arm64 vs x86: skipped: %s\n' "$*"
    exit 0
}

# fail WHAT [LOG]: the end of LOG, then the verdict.
fail() {
    if [[ -n ${2:-} && -f $2 ]]; then
        printf -- '--- last lines of %s:\n' "$2"
        tail -n 30 "$2"
        printf -- '---\n'
    fi
    cleanup
    printf 'arm64 vs x86: FAILED: %s\n' "$1"
    exit 1
}

# run LOG CMD...: CMD with its output in LOG, for at most $STEP_LIMIT s; fail, showing LOG, if
# it fails (124: it took too long).
readonly STEP_LIMIT=${ARM64_STEP_LIMIT:-1200}
run() {
    local log=$1
    shift
    if declare -F "$1" >/dev/null; then
        "$@" >"$log" 2>&1 || fail "$(basename "$log" .log) failed (exit $?): $*" "$log"
    else
        timeout --kill-after=10 "$STEP_LIMIT" "$@" >"$log" 2>&1 || fail "$(basename "$log" .log) failed (exit $?): $*" "$log"
    fi
}

mount_here() {
    mount "$@" || return
    MOUNTS+=("${*: -1}")
}

# The environment of everything in the arm64 root: clean (not this host's pip config), pip
# offline from the host-downloaded wheels, and the CPU that qemu must emulate.
readonly ROOT_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
    TERM=dumb QEMU_CPU="$CPU" PIP_NO_INDEX=1 PIP_FIND_LINKS=/var/cache/emocam-wheels
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off)

# in_root CMD...: CMD in the arm64 root, for at most $STEP_LIMIT s.
in_root() {
    timeout --kill-after=10 "$STEP_LIMIT" chroot "$ROOTFS" /usr/bin/env -i "${ROOT_ENV[@]}" "$@"
}

preconditions() {
    [[ $(uname -m) == x86_64 ]] || skip "this machine is $(uname -m), not x86_64"
    ((EUID == 0)) || skip "needs root (debootstrap, chroot, binfmt_misc): sudo bash tests/arm64/run.sh"
    local id='' version=''
    if [[ -r /etc/os-release ]]; then
        # shellcheck disable=SC1091
        id=$(. /etc/os-release && printf '%s' "${ID:-}")
        # shellcheck disable=SC1091
        version=$(. /etc/os-release && printf '%s' "${VERSION_ID:-}")
    fi
    [[ $id == debian && ${version%%.*} -ge 12 ]] 2>/dev/null || skip "needs Debian 12 or newer, this is ${id:-unknown} ${version}"
    [[ -f $HERE/cpuinfo/$CPU ]] || fail "ARM64_CPU=$CPU: no $HERE/cpuinfo/$CPU (cortex-a72 or cortex-a76)"
}

host_packages() {
    local missing=() package
    for package in "${HOST_DEBS[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null) == installed ]] || missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    say "installing on this machine: ${missing[*]}"
    run "$CACHE/host-apt.log" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    run "$CACHE/host-apt.log" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

binfmt() {
    local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
    if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
            skip "cannot mount binfmt_misc (an unprivileged container?)"
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    [[ -r $entry && $(head -n 1 "$entry") == enabled ]] ||
        skip "qemu-aarch64 is not enabled in binfmt_misc (update-binfmts --enable qemu-aarch64 failed)"
    # F: the kernel opens qemu when it is registered, so it needs no copy inside the root.
    grep -q '^flags: .*F' "$entry" || skip "qemu-aarch64 is registered without the F flag: it would need qemu inside the root"
    # Bind mounts are what the chroot needs; an unprivileged container refuses them.
    local probe
    probe=$(mktemp -d)
    if ! mount --bind "$probe" "$probe" 2>/dev/null; then
        rmdir "$probe"
        skip "cannot bind-mount (an unprivileged container?)"
    fi
    umount "$probe"
    rmdir "$probe"
}

# The cached root: debootstrap once per recipe, then every run works on an overlay of it.
base_root() {
    local key
    key=$(printf '%s\n' "$RECIPE" "$SUITE" "$MIRROR" "$DEBS" minbase | sha256sum | cut -c1-16)
    BASE=$CACHE/root-$key
    if [[ -f $BASE.ok ]]; then
        say "cached arm64 root $BASE"
        return
    fi
    say "building the $SUITE arm64 root (debootstrap from $MIRROR, a few minutes)"
    remove_tree "$BASE.tmp"
    BUILDING=$BASE.tmp
    run "$CACHE/debootstrap.log" debootstrap --arch=arm64 --variant=minbase --include="$DEBS" \
        "$SUITE" "$BASE.tmp" "$MIRROR"
    chroot "$BASE.tmp" /usr/bin/apt-get clean
    rm -rf "$BASE"
    mv "$BASE.tmp" "$BASE"
    BUILDING=
    touch "$BASE.ok"
    # Roots of other recipes are no longer used.
    local old
    while IFS= read -r -d '' old; do
        remove_tree "$old"
    done < <(find "$CACHE" -maxdepth 1 -name 'root-*' ! -name "root-$key*" -print0)
}

# The emocam runtime's dependencies and the build backend, as aarch64 wheels for Python 3.11,
# fetched by this machine's pip (the root's CA store and network stay out of it), plus pins.txt:
# the exact versions, which the x86 venv installs too.
wheels() {
    local key deps build
    mapfile -t deps < <(python3 - "$SOURCE/setup.cfg" <<'EOF'
import configparser, sys
cfg = configparser.ConfigParser()
cfg.read(sys.argv[1])
for line in cfg["options"]["install_requires"].splitlines():
    if line.strip():
        print(line.strip())
EOF
    )
    mapfile -t build < <(python3 - "$SOURCE/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
EOF
    )
    key=$( (printf '%s\n' "$RECIPE" "${deps[@]}" "${build[@]}"; cat "$SOURCE/systemd/constraints-bookworm.txt") |
        sha256sum | cut -c1-16)
    WHEELS=$CACHE/wheels-$key
    XVENV=$CACHE/x86-venv-$key
    if [[ ! -f $WHEELS/pins.txt ]]; then
        say "downloading aarch64 wheels: ${deps[*]} ${build[*]}"
        rm -rf "$WHEELS" "$XVENV"
        make_x86_venv
        run "$CACHE/wheels.log" "$XVENV/bin/pip" download --quiet --dest "$WHEELS.tmp" \
            --only-binary=:all: --python-version 3.11 --platform manylinux2014_aarch64 \
            --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
            --constraint "$SOURCE/systemd/constraints-bookworm.txt" "${deps[@]}" "${build[@]}"
        # name==version of each runtime wheel, for the x86 side.
        find "$WHEELS.tmp" -name '*.whl' -printf '%f\n' | sort |
            awk -F- '$1 != "setuptools" && $1 != "wheel" { print $1 "==" $2 }' >"$WHEELS.tmp/pins.txt"
        mv "$WHEELS.tmp" "$WHEELS"
        find "$CACHE" -maxdepth 1 \( -name 'wheels-*' -o -name 'x86-venv-*' \) ! -name "*-$key" -exec rm -rf {} +
    fi
    if [[ ! -f $XVENV/.deps-installed ]]; then
        say "x86 venv with the same versions: $(paste -sd' ' "$WHEELS/pins.txt")"
        [[ -x $XVENV/bin/python ]] || make_x86_venv
        run "$CACHE/x86-venv.log" "$XVENV/bin/pip" install --quiet -r "$WHEELS/pins.txt" wheel
        touch "$XVENV/.deps-installed"
    fi
}

# Debian's own python3 (3.11, as in the root), not whatever python3 comes first on PATH.
make_x86_venv() {
    [[ -x $XVENV/bin/python ]] && return
    run "$CACHE/x86-venv.log" /usr/bin/python3 -m venv --clear "$XVENV"
}

# A Pi user's clone: what install.sh and pip read, without caches or build output.
copy_source() {
    local out=$1 items=() item
    for item in pyproject.toml setup.cfg setup.py README.md LICENSE emocam edge train convert systemd docs; do
        [[ -e $SOURCE/$item ]] && items+=("$item")
    done
    mkdir -p "$out"
    tar -C "$SOURCE" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - "${items[@]}" | tar -C "$out" -xf -
}

work_root() {
    WORK=$(mktemp -d /var/tmp/emocam-arm64.XXXXXX)
    ROOTFS=$WORK/root
    mkdir -p "$WORK/upper" "$WORK/overlay-work" "$ROOTFS"
    if ! mount_here -t overlay overlay \
        -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/overlay-work" "$ROOTFS" 2>/dev/null; then
        say "no overlayfs here: copying the root"
        cp -a "$BASE/." "$ROOTFS/"
    fi
    mount_here -t proc proc "$ROOTFS/proc"
    # ai-edge-litert >= 2.2 crashes in Interpreter() under qemu 7.2 unless /proc/cpuinfo
    # describes an Arm CPU; this is a Pi's.
    mount_here --bind "$HERE/cpuinfo/$CPU" "$ROOTFS/proc/cpuinfo"
    mount_here --bind /sys "$ROOTFS/sys"
    mount_here --bind /dev "$ROOTFS/dev"
    mkdir -p "$ROOTFS/var/cache/emocam-wheels" "$ROOTFS/run/emocam-arm64/clips"
    mount_here --bind "$WHEELS" "$ROOTFS/var/cache/emocam-wheels"
    in_root /bin/true 2>/dev/null || skip "qemu-aarch64 cannot run the root's programs"
    copy_source "$ROOTFS/home/pi/emocam"
}

install_in_root() {
    local log=$WORK/install-1.log first_boot='on first boot run: systemctl daemon-reload && systemctl enable --now emocam'
    say "systemd/install.sh in the arm64 root (pip under emulation: a minute or more)"
    run "$log" in_root bash /home/pi/emocam/systemd/install.sh
    [[ $(tail -n 1 "$log") == *"$first_boot" ]] ||
        fail "install.sh did not end with what to run on first boot ('...$first_boot')" "$log"

    say "systemd-analyze verify, in the root"
    in_root systemd-analyze verify --man=no /etc/systemd/system/emocam.service >"$WORK/verify.log" 2>&1 ||
        fail "systemd-analyze verify exits $?" "$WORK/verify.log"
    [[ ! -s $WORK/verify.log ]] || fail "systemd-analyze verify warns about the installed unit" "$WORK/verify.log"

    say "the service user and the camera's group"
    in_root id -nG emocam | grep -qw video || fail "user emocam is not in group video: $(in_root id emocam)"
    # A node as udev makes it for a camera (root:video 0660), and a control that emocam must
    # not open: proof that the check can fail.
    in_root install -m 0660 -o root -g video /dev/null /run/emocam-arm64/video0
    in_root install -m 0660 -o root -g root /dev/null /run/emocam-arm64/not-video
    in_root runuser -u emocam -- sh -c 'exec 3<>/run/emocam-arm64/video0' 2>/dev/null ||
        fail "user emocam cannot open a root:video 0660 node"
    ! in_root runuser -u emocam -- sh -c 'exec 3<>/run/emocam-arm64/not-video' 2>/dev/null ||
        fail "user emocam opens a root:root 0660 node: the group check proves nothing"

    say "install.sh again: nothing to rebuild"
    log=$WORK/install-2.log
    run "$log" in_root bash /home/pi/emocam/systemd/install.sh
    grep -q 'not rebuilt' "$log" || fail "the second install.sh rebuilt emocam" "$log"
    ! grep -q '^+ \|pip install' "$log" || fail "the second install.sh ran a system step" "$log"
    [[ $(tail -n 1 "$log") == *"$first_boot" ]] || fail "the second install.sh ended differently" "$log"
    cp "$ROOTFS/etc/emocam/emocam.toml" "$WORK/emocam.toml"
}

install_x86() {
    say "emocam from the same source into the x86 venv"
    copy_source "$WORK/x86-src"
    run "$WORK/x86-install.log" "$XVENV/bin/pip" install --quiet --no-deps --no-build-isolation \
        --force-reinstall "$WORK/x86-src"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The root's mosquitto, and one subscriber on this machine that records every event.
broker() {
    local i
    PORT=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" \
        >"$ROOTFS/run/emocam-arm64/mosquitto.conf"
    chroot "$ROOTFS" /usr/bin/env -i "${ROOT_ENV[@]}" mosquitto -c /run/emocam-arm64/mosquitto.conf \
        >"$WORK/mosquitto.log" 2>&1 &
    PIDS+=($!)
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.2
    done
    ((i < 100)) || fail "the root's mosquitto does not listen on $PORT" "$WORK/mosquitto.log"
    mosquitto_sub -h 127.0.0.1 -p "$PORT" -q 1 -v -t 'emocam/+/events' -t 'emocam-arm64/marker' \
        >"$WORK/events.txt" 2>"$WORK/mosquitto_sub.log" &
    PIDS+=($!)
    marker ready
    say "the root's mosquitto on 127.0.0.1:$PORT"
}

# marker WORD: publish it and wait until the subscriber has it, so it saw everything before.
marker() {
    local i
    for ((i = 0; i < 50; i++)); do
        mosquitto_pub -h 127.0.0.1 -p "$PORT" -q 1 -t emocam-arm64/marker -m "$1" 2>/dev/null || true
        sleep 0.2
        grep -qx "emocam-arm64/marker $1" "$WORK/events.txt" && return
    done
    fail "the subscriber never got the '$1' marker" "$WORK/mosquitto_sub.log"
}

# runs NAME FILE: the clip in the root as the service user, then on x86; each once as installed
# and once with a tracker that reports every frame.
runs() {
    local name=$1 clip=$2 broker=mqtt://127.0.0.1:$PORT
    local frames=/run/emocam-arm64/frames.toml
    say "$name: emocam run on arm64 (emulated), as user emocam"
    run "$WORK/arm64-$name.log" in_root runuser -u emocam -- /opt/emocam/venv/bin/emocam run \
        --config /etc/emocam/emocam.toml --source "$clip" --broker "$broker" --device-id "arm64-$name" --no-realtime
    run "$WORK/arm64-$name-frames.log" in_root runuser -u emocam -- /opt/emocam/venv/bin/emocam run \
        --config "$frames" --source "$clip" --broker "$broker" --device-id "arm64-$name-frames" --no-realtime
    say "$name: emocam run on x86"
    run "$WORK/x86-$name.log" "$XVENV/bin/emocam" run --config "$WORK/emocam.toml" \
        --source "$ROOTFS$clip" --broker "$broker" --device-id "x86-$name" --no-realtime
    run "$WORK/x86-$name-frames.log" "$XVENV/bin/emocam" run --config "$ROOTFS$frames" \
        --source "$ROOTFS$clip" --broker "$broker" --device-id "x86-$name-frames" --no-realtime
}

uninstall_in_root() {
    local log=$WORK/uninstall.log
    say "install.sh --uninstall in the root"
    run "$log" in_root bash /home/pi/emocam/systemd/install.sh --uninstall
    [[ ! -e $ROOTFS/opt/emocam && ! -e $ROOTFS/etc/systemd/system/emocam.service ]] ||
        fail "--uninstall left /opt/emocam or the unit behind" "$log"
    [[ -f $ROOTFS/etc/emocam/emocam.toml ]] || fail "--uninstall removed the config" "$log"
}

main() {
    local clip='' names=() files=() name i
    case ${1:-} in
        -h | --help)
            sed -n '2,33s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
    esac
    (($# <= 1)) || { printf 'usage: bash tests/arm64/run.sh [CLIP]\n' >&2; exit 2; }
    if (($#)); then
        [[ -f $1 ]] || { printf 'tests/arm64/run.sh: no such clip: %s\n' "$1" >&2; exit 2; }
        clip=$(realpath "$1")
    fi
    preconditions
    # Second to everything else on the machine (a CI runner, a training job).
    renice -n 19 -p $$ >/dev/null || true
    mkdir -p "$CACHE"
    # One run at a time per cache: a second waits for the first.
    exec 9>"$CACHE/lock"
    flock -w "$STEP_LIMIT" 9 || fail "another run holds $CACHE/lock"
    host_packages
    binfmt
    base_root
    wheels
    work_root

    # The same files on both sides: the sample as the installed package has it, and the clip,
    # each under its own name (the reader emocam picks may depend on the extension).
    local sample
    sample=$(find "$ROOTFS/home/pi/emocam/edge" -name astronaut.avi -print -quit)
    [[ -n $sample ]] || fail "no bundled sample (astronaut.avi) in the checkout"
    names=(sample)
    files=("$sample")
    if [[ -n $clip ]]; then
        name=$(basename "$clip" | tr -c 'A-Za-z0-9_\n-' '_')
        names+=("$name")
        files+=("$clip")
    fi
    for i in "${!names[@]}"; do
        mkdir -p "$ROOTFS/run/emocam-arm64/clips/${names[i]}"
        cp "${files[i]}" "$ROOTFS/run/emocam-arm64/clips/${names[i]}/"
        files[i]=/run/emocam-arm64/clips/${names[i]}/$(basename "${files[i]}")
    done
    # Every frame its own face (min_iou 1, lost after 1 ms) reported at once and unsmoothed: each
    # "appeared" event is one frame's raw probabilities.
    printf '[tracker]\nhold_seconds = 0.0\nsmoothing_seconds = 0.0\nlost_after_seconds = 0.001\nmin_iou = 1.0\n' \
        >"$ROOTFS/run/emocam-arm64/frames.toml"
    chmod -R a+rX "$ROOTFS/run/emocam-arm64"

    install_in_root
    install_x86
    broker
    for i in "${!names[@]}"; do
        runs "${names[i]}" "${files[i]}"
    done
    marker finished
    uninstall_in_root

    local verdict rc=0
    verdict=$(python3 "$HERE/compare.py" "$WORK/events.txt" "${names[@]}" \
        --score "${ARM64_TOLERANCE_SCORE:-0.02}" --box "${ARM64_TOLERANCE_BOX:-0.01}" \
        --frame "${ARM64_TOLERANCE_FRAME:-0.06}") || rc=$?
    ((rc <= 1)) || fail "compare.py failed (exit $rc)"
    say "done in $((SECONDS - T0)) s (QEMU_CPU=$CPU; Python $("$XVENV/bin/python" -c 'import platform; print(platform.python_version())') on both sides)"
    cleanup
    printf '%s\n' "$verdict"
    return "$rc"
}

# Sourced (the tests call its functions one by one), it only defines them.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
