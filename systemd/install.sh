#!/usr/bin/env bash
# Install focus-assist as a boot-time service on Raspberry Pi OS Bookworm (see README,
# "Running as a service"). Safe to re-run: it upgrades the code and the unit in place and
# never touches an existing /etc/focus-assist/config.toml.
#
#   sudo systemd/install.sh              install (or upgrade) and start the service
#   sudo systemd/install.sh --uninstall  remove code and unit; keep config, captures, user
#   sudo systemd/install.sh --purge      ... and remove config, captures and the user too
#   systemd/install.sh --dry-run [...]   print every command that would change the system
#   --force (or FA_SKIP_PI_CHECK=1)      skip the "is this a Pi on Bookworm" check
#   --no-start                           install and enable, but do not start now
#
# Read-only checks (getent, systemctl is-active, test -e) run even in --dry-run, so the
# printed plan is exactly what a real run would do on this machine. Paths can be moved
# with FA_PREFIX, FA_CONFIG_DIR, FA_UNIT_DIR, FA_STATE_DIR, FA_USER (used by the tests).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEFAULT_PREFIX=/opt/focus-assist
DEFAULT_CONFIG_DIR=/etc/focus-assist
PREFIX=${FA_PREFIX:-$DEFAULT_PREFIX}
CONFIG_DIR=${FA_CONFIG_DIR:-$DEFAULT_CONFIG_DIR}
UNIT_DIR=${FA_UNIT_DIR:-/etc/systemd/system}
STATE_DIR=${FA_STATE_DIR:-/var/lib/focus-assist}
SVC_USER=${FA_USER:-focus-assist}
PYTHON=${FA_PYTHON:-python3}
DT_MODEL=${FA_DT_MODEL:-/proc/device-tree/model}
OS_RELEASE=${FA_OS_RELEASE:-/etc/os-release}
UNIT=focus-assist.service
GROUPS_NEEDED=(video gpio render)
APT_PACKAGES=(python3-picamera2 python3-venv python3-pip python3-lgpio)

DRY=0 FORCE=${FA_SKIP_PI_CHECK:-0} MODE=install PURGE=0 START=1

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "focus-assist: $*"; }

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        --force) FORCE=1 ;;
        --uninstall) MODE=uninstall ;;
        --purge) MODE=uninstall; PURGE=1 ;;
        --no-start) START=0 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$arg' (try --help)" ;;
    esac
done

# One argument as you would type it: bare if it is plain, else in single quotes.
quote() {
    if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# Print a command (copy-pasteable), then run it unless this is a dry run.
run() {
    local a line="+"
    for a in "$@"; do line+=" $(quote "$a")"; done
    echo "$line"
    [ "$DRY" = 1 ] || "$@"
}

# Like run, for steps whose failure is expected and harmless (unit already gone, ...).
run_ok() {
    run "$@" || say "(that failed; continuing)"
}

# A random token into a new 0600 file; the secret itself is never printed.
write_token() {
    printf '+ (umask 077; printf %s <random> > %s)\n' "'FOCUS_ASSIST_WEB_TOKEN=%s\n'" "$(quote "$1")"
    [ "$DRY" = 1 ] && return 0
    local token
    token=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    (umask 077; printf 'FOCUS_ASSIST_WEB_TOKEN=%s\n' "$token" > "$1")
}

# Refuse rm -rf on anything that is not a deep, absolute path of ours.
safe_dir() {
    case "$1" in
        /|/usr|/usr/*/|/etc|/etc/|/var|/var/lib|/var/lib/|/opt|/opt/|/home|/root|"") return 1 ;;
        /?*/?*) return 0 ;;
        *) return 1 ;;
    esac
}

check_platform() {
    [ "$FORCE" = 1 ] && { say "platform check skipped (--force)"; return; }
    local model="" codename=""
    [ -r "$DT_MODEL" ] && model=$(tr -d '\0' < "$DT_MODEL")
    # shellcheck disable=SC1090  # os-release is shell syntax by specification
    [ -r "$OS_RELEASE" ] && codename=$(. "$OS_RELEASE" && echo "${VERSION_CODENAME:-}")
    case "$model" in
        *"Raspberry Pi"*) ;;
        *) die "this is not a Raspberry Pi (${DT_MODEL} says '${model:-nothing}'); use --force to install anyway" ;;
    esac
    [ "$codename" = bookworm ] ||
        die "expected Raspberry Pi OS Bookworm, found '${codename:-unknown}'; use --force to install anyway"
    say "found: $model, $codename"
}

install_service() {
    say "will install focus-assist from $SRC:"
    say "  apt packages: ${APT_PACKAGES[*]}"
    say "  system user '$SVC_USER' in groups ${GROUPS_NEEDED[*]}"
    say "  venv (--system-site-packages, for apt's picamera2) in $PREFIX/venv, Pi constraints"
    say "  unit $UNIT_DIR/$UNIT; config $CONFIG_DIR/config.toml only if there is none"
    say "  then: systemctl enable $([ "$START" = 1 ] && echo '--now ')$UNIT"

    local was_active=0
    systemctl is-active --quiet "$UNIT" 2>/dev/null && was_active=1

    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"

    local g
    for g in "${GROUPS_NEEDED[@]}"; do
        getent group "$g" >/dev/null || run groupadd --system "$g"
    done
    local groups_csv
    groups_csv=$(IFS=,; echo "${GROUPS_NEEDED[*]}")
    if getent passwd "$SVC_USER" >/dev/null; then
        run usermod --append --groups "$groups_csv" "$SVC_USER"
    else
        run useradd --system --user-group --groups "$groups_csv" --home-dir "$STATE_DIR" \
            --no-create-home --shell /usr/sbin/nologin --comment "focus-assist service" "$SVC_USER"
    fi

    # --system-site-packages: picamera2 and libcamera exist only as apt packages.
    run "$PYTHON" -m venv --system-site-packages "$PREFIX/venv"
    # The constraints keep numpy at 1.x, which apt's picamera2 stack is built against.
    run "$PREFIX/venv/bin/pip" install --no-cache-dir -c "$SRC/constraints/bookworm-pi.txt" "${SRC}[device]"

    run install -d -m 0755 "$PREFIX/models"
    local m
    for m in "$SRC"/models/*.tflite "$SRC"/models/*.json; do
        if [ -e "$m" ]; then run install -m 0644 "$m" "$PREFIX/models/"; fi
    done
    run install -m 0644 "$SRC/README.md" "$PREFIX/README.md"

    run install -m 0644 "$SRC/systemd/$UNIT" "$UNIT_DIR/$UNIT"
    if [ "$PREFIX" != "$DEFAULT_PREFIX" ] || [ "$CONFIG_DIR" != "$DEFAULT_CONFIG_DIR" ]; then
        run sed -i -e "s#$DEFAULT_PREFIX/#$PREFIX/#g" -e "s#$DEFAULT_CONFIG_DIR/#$CONFIG_DIR/#g" "$UNIT_DIR/$UNIT"
    fi

    run install -d -m 0755 "$CONFIG_DIR"
    if [ -e "$CONFIG_DIR/config.toml" ]; then
        say "keeping the existing $CONFIG_DIR/config.toml"
    else
        run install -m 0644 "$SRC/systemd/config.toml" "$CONFIG_DIR/config.toml"
        if [ "$PREFIX" != "$DEFAULT_PREFIX" ]; then
            run sed -i "s#$DEFAULT_PREFIX/#$PREFIX/#g" "$CONFIG_DIR/config.toml"
        fi
    fi

    # The web viewfinder listens beyond localhost, so it needs a token: a random one, in a
    # root-only file the unit reads (EnvironmentFile=), made once and kept on re-runs.
    if [ -e "$CONFIG_DIR/environment" ]; then
        say "keeping the existing $CONFIG_DIR/environment (web token)"
    else
        write_token "$CONFIG_DIR/environment"
    fi

    run systemctl daemon-reload
    if [ "$START" = 1 ]; then
        run systemctl enable --now "$UNIT"
        # enable --now leaves a running service alone; an upgrade must load the new code.
        if [ "$was_active" = 1 ]; then run systemctl restart "$UNIT"; fi
        say "done. Check it with: systemctl status focus-assist; journalctl -u focus-assist -f"
        say "web viewfinder: http://$(hostname).local:8000/?token=TOKEN, TOKEN from: sudo cat $CONFIG_DIR/environment"
    else
        run systemctl enable "$UNIT"
        say "done (not started). Start it with: sudo systemctl start focus-assist"
    fi
}

uninstall_service() {
    say "will stop and remove the service, $UNIT_DIR/$UNIT and $PREFIX"
    if [ "$PURGE" = 1 ]; then
        say "  --purge: also $CONFIG_DIR, $STATE_DIR (captures, defect map, motor position) and user '$SVC_USER'"
    fi
    run_ok systemctl disable --now "$UNIT"
    run rm -f "$UNIT_DIR/$UNIT"
    run systemctl daemon-reload
    run_ok systemctl reset-failed "$UNIT"
    safe_dir "$PREFIX" || die "refusing to remove '$PREFIX'"
    run rm -rf "$PREFIX"
    if [ "$PURGE" = 1 ]; then
        safe_dir "$STATE_DIR" || die "refusing to remove '$STATE_DIR'"
        safe_dir "$CONFIG_DIR" || die "refusing to remove '$CONFIG_DIR'"
        run rm -rf "$STATE_DIR" "$CONFIG_DIR"
        if getent passwd "$SVC_USER" >/dev/null; then
            run userdel "$SVC_USER"
        fi
        say "purged. The apt packages (${APT_PACKAGES[*]}) stay: other programs may use them."
    else
        say "kept $CONFIG_DIR, $STATE_DIR and user '$SVC_USER' (--purge removes them)."
    fi
}

if [ "$DRY" = 1 ]; then
    say "dry run: nothing will be changed; the commands below are what would run"
elif [ "$(id -u)" != 0 ]; then
    die "must run as root (sudo $0 $*), or try --dry-run"
fi

if [ "$MODE" = uninstall ]; then
    uninstall_service
else
    check_platform
    install_service
fi
