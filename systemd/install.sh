#!/usr/bin/env bash
# Install emocam as a hardened systemd service on Raspberry Pi OS (Bookworm or Trixie, 64-bit).
#
#   sudo systemd/install.sh                    install or upgrade, enable and (re)start the service
#   sudo systemd/install.sh --with-mosquitto   ... and a local MQTT broker
#   sudo systemd/install.sh --uninstall        remove it, keeping /etc/emocam (add --purge to drop it)
#   systemd/install.sh --dry-run               print every command, change nothing
#   systemd/install.sh --root DIR              install the files under DIR (DESTDIR-style); apt,
#                                              pip, useradd and systemctl are printed, not run
#
# Running it again is safe: files that are already right are left alone, and the user's
# /etc/emocam/emocam.toml is never overwritten. Without systemd as PID 1 (a chroot, a container,
# an image build, SYSTEMD_OFFLINE=1) it installs everything and says what to run on first boot.
set -euo pipefail

readonly SERVICE=emocam
readonly PREFIX=/opt/emocam
readonly VENV=$PREFIX/venv
readonly CONSTRAINTS=$PREFIX/constraints.txt
readonly CONF_DIR=/etc/emocam
readonly CONFIG=$CONF_DIR/emocam.toml
readonly STATE_DIR=/var/lib/emocam
readonly UNIT_PATH=/etc/systemd/system/$SERVICE.service
# Where `systemctl enable` links the unit ([Install] WantedBy=multi-user.target).
readonly WANTS_LINK=/etc/systemd/system/multi-user.target.wants/$SERVICE.service
# What the last pip install put into the venv: the source's digest, its version and the venv's
# packages. A re-run with the same three skips pip, which takes 40-60 s on a Pi. Inside the venv,
# so a rebuilt venv (--clear) forgets it.
readonly STAMP=$VENV/.emocam-install
readonly DOC_PATH=$PREFIX/docs/raspberry-pi.md

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR

DRY_RUN=0
ROOT=
WITH_MOSQUITTO=0
UNINSTALL=0
PURGE=0
SOURCE=$(dirname "$SCRIPT_DIR")

usage() {
    sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    cat <<EOF

Options:
  --dry-run          print every command instead of running it
  --root DIR         install files under DIR; print system commands (for tests and packaging)
  --source PATH      the emocam source tree or wheel (default: $SOURCE)
  --with-mosquitto   also install and enable the mosquitto broker and clients
  --uninstall        stop and remove the service, venv and unit; keep $CONF_DIR and $STATE_DIR
  --purge            with --uninstall: also remove $CONF_DIR, $STATE_DIR and the $SERVICE user
  -h, --help         this text
EOF
}

die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

say() {
    printf '==> %s\n' "$*"
}

# Commands that change the machine (apt, pip, users, systemd): printed under --dry-run or --root.
sys() {
    if ((DRY_RUN)) || [[ -n $ROOT ]]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# Commands that write files below $ROOT: printed under --dry-run only.
fs() {
    if ((DRY_RUN)); then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# systemctl can enable and start units only where systemd runs as PID 1 (/run/systemd/system is
# how sd_booted(3) tells). In a chroot, such as an emulated Pi root, a container or an image
# build it fails; SYSTEMD_OFFLINE=1 asks for the same offline behaviour; --root is another system.
systemd_is_running() {
    [[ -z $ROOT && ${SYSTEMD_OFFLINE:-0} != 1 && -d /run/systemd/system ]]
}

# True when every Debian package among the arguments is installed (and dpkg is there to say so).
debs_installed() {
    local package
    command -v dpkg-query >/dev/null 2>&1 || return 1
    for package; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null) == installed ]] || return 1
    done
}

parse_args() {
    while (($#)); do
        case $1 in
            --dry-run) DRY_RUN=1 ;;
            --root)
                (($# >= 2)) || die "--root needs a directory"
                ROOT=$2
                shift
                ;;
            --root=*) ROOT=${1#--root=} ;;
            --source)
                (($# >= 2)) || die "--source needs a path"
                SOURCE=$2
                shift
                ;;
            --source=*) SOURCE=${1#--source=} ;;
            --with-mosquitto) WITH_MOSQUITTO=1 ;;
            --uninstall) UNINSTALL=1 ;;
            --purge) UNINSTALL=1 PURGE=1 ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
        shift
    done
    if [[ -n $ROOT ]]; then
        [[ -d $ROOT ]] || die "--root $ROOT is not a directory"
        ROOT=$(cd "$ROOT" && pwd)
        [[ $ROOT != / ]] || ROOT=
    fi
    # Absolute, because pip and the staging copy run from other directories.
    if [[ -e $SOURCE ]]; then
        SOURCE=$(realpath "$SOURCE")
    fi
    if ((!DRY_RUN)) && [[ -z $ROOT ]] && ((EUID != 0)); then
        die "run it as root (sudo $0 $*), or try --dry-run"
    fi
}

# The OS codename of the system being installed: $ROOT/etc/os-release first, so a test root can
# pretend to be Trixie.
os_codename() {
    local file
    for file in "$ROOT/etc/os-release" /etc/os-release; do
        if [[ -r $file ]]; then
            (
                # shellcheck disable=SC1090
                . "$file"
                printf '%s\n' "${VERSION_CODENAME:-unknown}"
            )
            return
        fi
    done
    printf 'unknown\n'
}

# mode and owner:group of a path, as stat prints them ("640 root:emocam").
stat_of() {
    stat -c '%a %U:%G' "$1" 2>/dev/null || true
}

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
    local dest=$ROOT$1 mode=$2 owner=$3
    if [[ ! -d $dest ]]; then
        fs install -d -m "$mode" "$dest"
    elif [[ $(stat -c '%a' "$dest") != "${mode#0}" ]]; then
        fs chmod "$mode" "$dest"
    fi
    set_owner "$1" "$owner"
}

# install_file SRC DEST MODE OWNER:GROUP: copies only when the content or mode differs, so a
# second run leaves every file (and its mtime) alone.
install_file() {
    local src=$1 dest=$ROOT$2 mode=$3 owner=$4
    if [[ -f $dest ]] && cmp -s "$src" "$dest" && [[ $(stat -c '%a' "$dest") == "${mode#0}" ]]; then
        say "$2 is up to date"
    else
        fs install -D -m "$mode" "$src" "$dest"
        ((DRY_RUN)) || say "installed $2"
    fi
    set_owner "$2" "$owner"
}

# Ownership needs the real users, so under --root it is printed like other system commands.
set_owner() {
    local path=$1 owner=$2
    if [[ -n $ROOT ]] || ((DRY_RUN)); then
        sys chown "$owner" "$path"
    elif [[ $(stat -c '%U:%G' "$path") != "$owner" ]]; then
        chown "$owner" "$path"
    fi
}

# Fail before touching anything when --source is not an emocam checkout or wheel.
check_source() {
    if [[ -d $SOURCE ]]; then
        [[ -f $SOURCE/setup.cfg || -f $SOURCE/pyproject.toml ]] ||
            die "$SOURCE is not a Python project: is --source an emocam checkout?"
        [[ -f $SOURCE/edge/emocam.toml ]] ||
            die "$SOURCE/edge/emocam.toml is missing: is --source an emocam checkout?"
    elif [[ -f $SOURCE && $SOURCE == *.whl ]]; then
        :
    else
        die "--source $SOURCE is neither an emocam checkout nor a .whl file"
    fi
}

# The default config ships inside the package: take it from the source tree or the wheel.
default_config() {
    local out=$1
    if [[ -d $SOURCE ]]; then
        cp "$SOURCE/edge/emocam.toml" "$out"
    else
        python3 - "$SOURCE" "$out" <<'EOF' || die "$SOURCE has no emocam/edge/emocam.toml: is --source an emocam wheel?"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("emocam/edge/emocam.toml") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    fi
}

apt_has() {
    command -v apt-cache >/dev/null 2>&1 && apt-cache show "$1" >/dev/null 2>&1
}

install_apt_packages() {
    local packages=(python3-venv)
    # Raspberry Pi OS's archive has it; plain Debian does not. The venv sees it through
    # --system-site-packages, never through pip (pip's build is not linked to the Pi's libcamera).
    if apt_has python3-picamera2; then
        packages+=(python3-picamera2)
    else
        say "python3-picamera2 is not in this system's apt sources: camera support is V4L2 only"
    fi
    if ((WITH_MOSQUITTO)); then
        packages+=(mosquitto mosquitto-clients)
    fi
    # A re-run skips apt (and its slow `apt-get update`) when everything is there already;
    # upgrades are apt's job (`apt full-upgrade`).
    if [[ -z $ROOT ]] && ((!DRY_RUN)) && debs_installed "${packages[@]}"; then
        say "apt packages ${packages[*]} are installed"
        return
    fi
    say "installing apt packages: ${packages[*]}"
    sys apt-get update
    # --no-install-recommends: on Lite, picamera2's recommends pull in a whole desktop stack.
    sys env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
}

ensure_user() {
    say "service user $SERVICE (groups: $SERVICE, video)"
    if [[ -n $ROOT ]] || ((DRY_RUN)); then
        sys useradd --system --user-group --groups video --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE"
    elif ! id -u "$SERVICE" >/dev/null 2>&1; then
        useradd --system --user-group --groups video --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE"
    else
        # The video group is what the camera nodes belong to; make sure an older user has it.
        usermod --append --groups video "$SERVICE"
    fi
}

write_constraints() {
    local codename=$1 tmp=$2
    {
        printf '# Written by systemd/install.sh for %s; pip installs with --constraint this file.\n' "$codename"
        if [[ $codename == bookworm ]]; then
            # The pins for apt's picamera2 (numpy 1.24); why: in the file.
            cat "$SCRIPT_DIR/constraints-bookworm.txt"
        else
            printf '# No pins: this release ships numpy 2, which the current wheels match.\n'
        fi
    } >"$tmp"
}

# pip builds a source tree in place (build/, *.egg-info): run as root on the user's checkout it
# would leave root-owned files there. Build from a copy of just what the build reads instead.
stage_source() {
    local out=$1 item items=()
    for item in pyproject.toml setup.cfg setup.py README.md LICENSE emocam edge train convert; do
        [[ -e $SOURCE/$item ]] && items+=("$item")
    done
    mkdir -p "$out"
    tar -C "$SOURCE" --exclude=__pycache__ -cf - "${items[@]}" | tar -C "$out" -xf -
}

# The version of the emocam source tree or wheel given as the argument.
source_version() {
    local package=$1
    if [[ -d $package ]]; then
        sed -n 's/^__version__ = ["'\'']\([^"'\'']*\)["'\'']$/\1/p' "$package/emocam/__init__.py" 2>/dev/null | head -n 1
    else
        basename "$package" | cut -d- -f2
    fi
}

# sha256 of what pip would install: every file and link of the staged tree (or the wheel) and
# the pins. Paths are relative, so the staging folder's name does not count.
source_digest() {
    local package=$1 constraints=$2
    {
        if [[ -d $package ]]; then
            (
                cd "$package"
                find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
                find . -type l -printf '%p -> %l\n' | LC_ALL=C sort
            )
        else
            sha256sum <"$package"
        fi
        cat "$constraints"
    } | sha256sum | cut -d' ' -f1
}

# sha256 of the name==version list of what the venv itself holds (not the system's packages), so
# a numpy 2 that got into it by hand makes a re-run reinstall the pins.
venv_packages_digest() {
    "$VENV/bin/python" - <<'EOF' | sha256sum | cut -d' ' -f1
import importlib.metadata
import sysconfig

paths = sorted({sysconfig.get_paths()[key] for key in ("purelib", "platlib")})
for line in sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions(path=paths)):
    print(line)
EOF
}

# True when the venv holds exactly what the stamp says was installed from this source and pins.
# Under --root or --dry-run only the source line can be checked: the venv's Python is not ours
# to run (it may not even be this machine's architecture).
venv_is_current() {
    local digest=$1 stamp=$ROOT$STAMP have_source='' have_packages='' key value
    [[ -e $ROOT$VENV/bin/emocam && -f $stamp ]] || return 1
    while read -r key value; do
        case $key in
            source) have_source=$value ;;
            packages) have_packages=$value ;;
        esac
    done <"$stamp"
    [[ $have_source == "$digest" ]] || return 1
    if [[ -n $ROOT ]] || ((DRY_RUN)); then
        return 0
    fi
    [[ -n $have_packages && $have_packages == "$(venv_packages_digest 2>/dev/null)" ]]
}

install_python() {
    local package=$1 constraints=$2 digest version
    digest=$(source_digest "$package" "$constraints")
    version=$(source_version "$package")
    say "Python environment in $VENV"
    # --system-site-packages: picamera2 and libcamera come from apt, not from PyPI.
    if [[ -n $ROOT ]] || ((DRY_RUN)); then
        sys python3 -m venv --system-site-packages "$VENV"
    elif [[ ! -e $VENV/bin/python ]]; then
        python3 -m venv --system-site-packages "$VENV"
    elif ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        # Left behind by an older Python (an OS upgrade): rebuild it rather than patch it.
        python3 -m venv --clear --system-site-packages "$VENV"
    fi
    if venv_is_current "$digest"; then
        say "emocam ${version:-?} in $VENV is up to date (same source, pins and packages): not rebuilt"
        return
    fi
    say "installing emocam ${version:-?} (source sha256 $digest) into $VENV"
    # The device part only: the base distribution has no TensorFlow; the emotion model and the
    # BlazeFace face detector's models ship inside it.
    sys "$VENV/bin/pip" install --constraint "$CONSTRAINTS" "$package"
    if [[ -z $ROOT ]] && ((!DRY_RUN)); then
        printf 'source %s\nversion %s\npackages %s\n' "$digest" "${version:-?}" "$(venv_packages_digest)" >"$STAMP"
    fi
}

# Catch the two classic breakages before systemd does: numpy 2 under apt's picamera2, and a
# config the daemon refuses.
check_install() {
    if [[ -n $ROOT ]] || ((DRY_RUN)); then
        sys runuser -u "$SERVICE" -- "$VENV/bin/emocam" check-config --config "$CONFIG"
        return
    fi
    if apt_has python3-picamera2 && ! "$VENV/bin/python" -c 'import picamera2' >/dev/null 2>&1; then
        die "picamera2 does not import in $VENV (numpy 2 in the venv?): see $DOC_PATH, Troubleshooting"
    fi
    runuser -u "$SERVICE" -- "$VENV/bin/emocam" check-config --config "$CONFIG" >/dev/null ||
        die "the daemon rejects $CONFIG: fix it, then run this again"
}

do_install() {
    local codename tmp
    codename=$(os_codename)
    say "installing $SERVICE from $SOURCE (OS: $codename)"
    check_source
    case $codename in
        bookworm | trixie) ;;
        *) say "warning: $codename is not Raspberry Pi OS Bookworm or Trixie; carrying on" ;;
    esac

    tmp=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: $tmp is local
    trap "rm -rf '$tmp'" EXIT

    install_apt_packages
    ensure_user

    ensure_dir "$PREFIX" 0755 root:root
    write_constraints "$codename" "$tmp/constraints.txt"
    install_file "$tmp/constraints.txt" "$CONSTRAINTS" 0644 root:root
    if [[ -d $SOURCE ]]; then
        stage_source "$tmp/emocam-src"
        say "building from a copy of $SOURCE in $tmp/emocam-src"
        install_python "$tmp/emocam-src" "$tmp/constraints.txt"
    else
        install_python "$SOURCE" "$tmp/constraints.txt"
    fi

    # Config is readable by the service, writable by root only; the service never writes it.
    ensure_dir "$CONF_DIR" 0750 "root:$SERVICE"
    # Where new models go: [model] path points here, then `systemctl reload emocam`.
    ensure_dir "$CONF_DIR/models" 0750 "root:$SERVICE"
    if [[ -e $ROOT$CONFIG ]]; then
        say "keeping your $CONFIG"
    else
        default_config "$tmp/emocam.toml"
        install_file "$tmp/emocam.toml" "$CONFIG" 0640 "root:$SERVICE"
    fi

    if [[ -f $SOURCE/docs/raspberry-pi.md ]]; then
        install_file "$SOURCE/docs/raspberry-pi.md" "$DOC_PATH" 0644 root:root
    fi
    install_file "$SCRIPT_DIR/$SERVICE.service" "$UNIT_PATH" 0644 root:root

    check_install
    if ! systemd_is_running; then
        local units=$SERVICE
        if ((WITH_MOSQUITTO)); then
            units="mosquitto $SERVICE"
            say "point it at the local broker: [mqtt] url = \"mqtt://localhost\" in $CONFIG"
        fi
        say "installed, not started: systemd is not running here (a chroot, container or image build, --root or SYSTEMD_OFFLINE=1); on first boot run: systemctl daemon-reload && systemctl enable --now $units"
        return
    fi
    if ((WITH_MOSQUITTO)); then
        sys systemctl enable --now mosquitto.service
    fi
    sys systemctl daemon-reload
    sys systemctl enable "$SERVICE.service"
    # restart, not start: a re-run after `git pull` must run the code it just installed.
    sys systemctl restart "$SERVICE.service"

    say "done. Follow it with: journalctl -u $SERVICE -f"
    if ((WITH_MOSQUITTO)); then
        say "point it at the local broker: [mqtt] url = \"mqtt://localhost\" in $CONFIG, then: systemctl restart $SERVICE"
    fi
}

do_uninstall() {
    say "uninstalling $SERVICE"
    if systemd_is_running; then
        sys systemctl disable --now "$SERVICE.service" || true
    else
        say "systemd is not running here: nothing to stop"
    fi
    if [[ -e $ROOT$UNIT_PATH ]]; then
        fs rm -f "$ROOT$UNIT_PATH"
        say "removed $UNIT_PATH"
    fi
    # Left by an enable without systemd running (an image build), or by a disable that failed.
    if [[ -L $ROOT$WANTS_LINK ]]; then
        fs rm -f "$ROOT$WANTS_LINK"
        say "removed $WANTS_LINK"
    fi
    if systemd_is_running; then
        sys systemctl daemon-reload
    fi
    if [[ -e $ROOT$PREFIX ]]; then
        fs rm -rf "$ROOT$PREFIX"
        say "removed $PREFIX"
    fi
    if ((PURGE)); then
        for dir in "$CONF_DIR" "$STATE_DIR"; do
            if [[ -e $ROOT$dir ]]; then
                fs rm -rf "$ROOT$dir"
                say "removed $dir"
            fi
        done
        if [[ -n $ROOT ]] || ((DRY_RUN)) || id -u "$SERVICE" >/dev/null 2>&1; then
            sys userdel "$SERVICE"
        fi
    else
        say "kept $CONF_DIR and $STATE_DIR (remove them with --purge)"
    fi
    say "apt packages (python3-picamera2, mosquitto) are left installed"
}

main() {
    parse_args "$@"
    if ((UNINSTALL)); then
        do_uninstall
    else
        do_install
    fi
}

main "$@"
