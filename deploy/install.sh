#!/usr/bin/env bash
# Install se3-bridge on a gateway as systemd services. Idempotent: run it again to
# upgrade; the config and the broker passwords are kept. See deploy/README.md.
#
#   sudo deploy/install.sh [--enable]          install (or upgrade) on this box
#   deploy/install.sh --dry-run                print what would be done, change nothing
#   deploy/install.sh --destdir DIR            install under DIR instead of / (no users,
#                                              no systemctl): for tests and image builds
#
# The Debian package (`make dist`, deploy/debian/) runs the same steps in two halves:
#   deploy/install.sh --package-tree DIR       at build time: the files (steps 1, 2, 4, 5
#                                              without the venv, users or systemctl) under
#                                              DIR, in Debian's places (/usr/bin, /lib/systemd)
#   /opt/se3-bridge/app/deploy/install.sh --package-configure
#                                              its postinst: the venv from the bundled wheels
#                                              (/opt/se3-bridge/wheels, no index), step 3,
#                                              enable and (re)start the services
#
# What it does, in order:
#   1. copies the project to /opt/se3-bridge/app and makes the venv /opt/se3-bridge/venv
#      with the project and its dependencies (pip, from the configured index);
#   2. /etc/se3/config.toml from config/example.toml, only if there is none yet;
#   3. the system user se3-mqtt and the broker's state directory /var/lib/se3/mqtt,
#      rendered with `python -m demo.broker setup` (config, ACL, role passwords);
#   4. se3-bridge / se3-collector commands in /usr/local/bin (config /etc/se3/config.toml);
#   5. the units of deploy/systemd into /etc/systemd/system, daemon-reload, restart the
#      se3 units already running, and with --enable, enable and start the services
#      (the console too: its admin password is made at its first start, in
#      /var/lib/se3-console/admin.pass).

set -euo pipefail
umask 022
# The project's code runs from $APP during the install; leave no __pycache__ there.
export PYTHONDONTWRITEBYTECODE=1

PREFIX=/opt/se3-bridge
STATE=/var/lib/se3/mqtt
# se3-console.service's StateDirectory: the console's admin password lives there.
CONSOLE_PASS=/var/lib/se3-console/admin.pass
BROKER_USER=se3-mqtt
# Made when this script disables Debian's mosquitto.service (which wants the same port).
DEBIAN_MOSQUITTO_MARK=/var/lib/se3/debian-mosquitto.disabled
PORT=1883
CORE_UNITS=(se3-mosquitto.service se3-collector-gateway.service se3-collector-devices.service
            se3-bridge.service se3-console.service)

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DESTDIR=${DESTDIR:-}
PYTHON=${PYTHON:-python3}
DRY=0
ENABLE=0
PIP=1
# The halves of the steps this run does: FILES puts the files in place (the package
# ships them), SYSTEM makes the venv, the users and the broker's state and runs
# systemctl (the package's postinst). A plain install does both.
FILES=1
SYSTEM=1
# Where the package's postinst finds the wheels it installs from (no index).
WHEELS=$PREFIX/wheels

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
    cat <<EOF
Options:
  --dry-run        print the commands, run none of them
  --destdir DIR    install under DIR (also \$DESTDIR); skips users, chown and systemctl
  --enable         enable and start the broker, collectors, bridge and console
                   (not the receiver)
  --python PATH    the Python (3.11+) that makes the venv (default: python3, or \$PYTHON)
  --no-pip         make the venv but install nothing into it; Python steps then run
                   with --python, which must have the project's dependencies (tests)
  --package-tree DIR   the Debian package's files under DIR (make dist)
  --package-configure  the Debian package's postinst (see above)
  -h, --help       this text
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY=1 ;;
        --destdir) DESTDIR=${2:?--destdir needs a directory}; shift ;;
        --destdir=*) DESTDIR=${1#*=} ;;
        --enable) ENABLE=1 ;;
        --python) PYTHON=${2:?--python needs a path}; shift ;;
        --python=*) PYTHON=${1#*=} ;;
        --no-pip) PIP=0 ;;
        --package-tree) DESTDIR=${2:?--package-tree needs a directory}; SYSTEM=0; shift ;;
        --package-configure) FILES=0; ENABLE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT=${DESTDIR%/}
if [ -n "$ROOT" ]; then
    case $ROOT in /*) ;; *) ROOT=$(pwd)/$ROOT ;; esac
fi
APP=$ROOT$PREFIX/app
VENV=$ROOT$PREFIX/venv
ETC=$ROOT/etc/se3
if [ "$SYSTEM" -eq 0 ]; then
    # The Debian package: its files go where Debian's own packages put theirs.
    UNITDIR=$ROOT/lib/systemd/system
    BINDIR=$ROOT/usr/bin
else
    UNITDIR=$ROOT/etc/systemd/system
    BINDIR=$ROOT/usr/local/bin
fi
BROKER_DIR=$ROOT$STATE

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# Every change to the system goes through `run`, so --dry-run shows all of them.
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [ "$DRY" -eq 0 ]; then "$@"; fi
}

staged() { [ -n "$ROOT" ]; }
have_systemd() { ! staged && [ -d /run/systemd/system ]; }

find_tool() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; }; }

# -- checks (nothing is changed before they pass) --------------------------------------

if ! staged && [ "$DRY" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo $0), or try --dry-run or --destdir DIR"
fi
if [ "$SYSTEM" -eq 1 ]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: apt-get install python3 python3-venv"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is older than 3.11"
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
        || die "$PYTHON cannot make a venv: apt-get install python3-venv"
    [ -n "$(find_tool mosquitto)" ] || die "mosquitto not found: apt-get install mosquitto"
    [ -n "$(find_tool mosquitto_passwd)" ] \
        || die "mosquitto_passwd not found: apt-get install mosquitto"
fi
for unit in "$SRC"/deploy/systemd/*.service; do
    [ -f "$unit" ] || die "no unit files in $SRC/deploy/systemd"
done

# The Python that runs the project's own code during the install.
if [ "$PIP" -eq 1 ]; then PY=$VENV/bin/python; else PY=$PYTHON; fi

# -- 1. the code and its venv ------------------------------------------------------------

if [ "$FILES" -eq 1 ]; then
say "installing the project from $SRC into $APP"
run mkdir -p "$ROOT$PREFIX"
run rm -rf "$APP.new"
run mkdir "$APP.new"
for item in bridge collectors receiver demo console mosquitto config deploy pyproject.toml \
        README.md; do
    if [ -e "$SRC/$item" ]; then run cp -R "$SRC/$item" "$APP.new/"; fi
done
run find "$APP.new" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
# Swap the whole tree, so no file of an older version stays behind.
run rm -rf "$APP.old"
if [ -e "$APP" ]; then run mv "$APP" "$APP.old"; fi
run mv "$APP.new" "$APP"
run rm -rf "$APP.old"
fi  # FILES: the code

if [ "$SYSTEM" -eq 1 ]; then
# A venv whose Python is gone (the system's was replaced) is made again.
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
    say "venv $VENV does not run: making it again"
    run rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    run "$PYTHON" -m venv "$VENV"
else
    say "venv $VENV exists: reused"
fi
if [ "$PIP" -eq 1 ]; then
    if [ "$FILES" -eq 1 ]; then
        # From the checkout in $APP, the dependencies from pip's configured index.
        SOURCE=("$APP")
    else
        # The package: only its own wheels, for this CPU and Python 3.11 (make dist).
        SOURCE=(--no-index --find-links "$WHEELS" --upgrade se3-bridge)
    fi
    # --force-reinstall --no-deps for the project itself: its version number does not
    # change between builds, and an upgrade must replace its code every time.
    run "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir \
        --quiet "${SOURCE[@]}"
    run "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir \
        --quiet --force-reinstall --no-deps "${SOURCE[@]}"
    run find "$APP" -maxdepth 1 \( -name build -o -name '*.egg-info' \) -exec rm -rf {} +
else
    say "--no-pip: nothing installed into $VENV; Python steps use $PY"
fi
fi  # SYSTEM: the venv

# -- 2. the configuration ----------------------------------------------------------------

# (The package ships the config this makes as a conffile: dpkg keeps an edited one.)
if [ "$FILES" -eq 1 ]; then
run mkdir -p "$ETC"
if [ -e "$ETC/config.toml" ]; then
    say "$ETC/config.toml exists: kept"
else
    # The services get their own broker user from their units; commands run by hand
    # (se3-bridge status, snapshot) use the read-only monitor user (never a
    # daemon's: the broker makes the user name the client id).
    run cp "$SRC/config/example.toml" "$ETC/config.toml.new"
    run sed -i \
        -e 's|^username = "bridge"|username = "monitor"|' \
        -e "s|^password_file = \"var/mqtt/bridge.pass\"|password_file = \"$STATE/monitor.pass\"|" \
        -e "s|^password_file = \"var/console/admin.pass\"|password_file = \"$CONSOLE_PASS\"|" \
        "$ETC/config.toml.new"
    run chmod 0644 "$ETC/config.toml.new"
    run mv "$ETC/config.toml.new" "$ETC/config.toml"
    say "NOW EDIT $ETC/config.toml: gateway.sn, dev_sno, sw_version_file, the platform's"
    say "report_url (or login_url) and the [[devices]]"
fi
# A config from before the console has no [console] section: the console's
# defaults would put its password under /etc/se3, which it cannot write. Adding the
# section changes none of the settings the file has.
if [ -e "$ETC/config.toml" ] && ! grep -q '^\[console\]' "$ETC/config.toml"; then
    say "$ETC/config.toml has no [console] section: appending one (console on 127.0.0.1:5555)"
    if [ "$DRY" -eq 0 ]; then
        printf '\n[console]\n# The box'"'"'s configuration API and web console (se3-console).\n%s\n%s\n' \
            'listen = "127.0.0.1:5555"' "password_file = \"$CONSOLE_PASS\"" >>"$ETC/config.toml"
    fi
elif [ -e "$ETC/config.toml" ] && ! grep -q "^password_file = \"$CONSOLE_PASS\"" "$ETC/config.toml"; then
    say "WARNING: [console] password_file in $ETC/config.toml is not $CONSOLE_PASS:"
    say "  se3-console.service may write only there"
fi
fi  # FILES: the configuration

# -- 3. the broker's user and state ----------------------------------------------------------

if [ "$SYSTEM" -eq 1 ]; then
if staged; then
    run mkdir -p "$BROKER_DIR"
else
    if ! id -u "$BROKER_USER" >/dev/null 2>&1; then
        run useradd --system --user-group --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "se3-bridge MQTT broker" "$BROKER_USER"
    fi
    run install -d -m 0755 "$ROOT/var/lib/se3"
    run install -d -m 0700 -o "$BROKER_USER" -g "$BROKER_USER" "$BROKER_DIR"
    # Files made by an earlier run as root, or by hand, must be the broker's.
    run chown -R "$BROKER_USER:$BROKER_USER" "$BROKER_DIR"
fi
# Run from $APP: `python -m demo.broker` finds the templates in $APP/mosquitto.
# se3-mosquitto.service renders the same again before every start.
if staged; then
    run env -C "$APP" "$PY" -m demo.broker setup --dir "$BROKER_DIR" --port "$PORT" \
        --config "$ETC/config.toml"
else
    run env -C "$APP" runuser -u "$BROKER_USER" -- \
        "$PY" -m demo.broker setup --dir "$BROKER_DIR" --port "$PORT" --config "$ETC/config.toml"
fi

# A config that does not validate is worth hearing about now, not at the first start.
if [ "$DRY" -eq 0 ]; then
    if ! SE3_MQTT_PASSWORD_FILE="$BROKER_DIR/monitor.pass" \
            env -C "$APP" "$PY" -m bridge --config "$ETC/config.toml" check; then
        say "WARNING: $ETC/config.toml does not validate (see above); the services will not start"
    fi
fi
fi  # SYSTEM: the broker

# -- 4. commands for people --------------------------------------------------------------------

if [ "$FILES" -eq 1 ]; then
run mkdir -p "$BINDIR"
for cmd in se3-bridge:bridge se3-collector:collectors; do
    name=${cmd%%:*}
    module=${cmd#*:}
    say "writing $BINDIR/$name"
    if [ "$DRY" -eq 0 ]; then
        cat >"$BINDIR/$name.new" <<EOF
#!/bin/sh
# Installed by se3-bridge's deploy/install.sh: $name with the gateway's config.
: "\${SE3_CONFIG:=/etc/se3/config.toml}"
export SE3_CONFIG
# -P: a bridge/ or collectors/ directory where it is run from is not imported.
exec $PREFIX/venv/bin/python -P -m $module "\$@"
EOF
        chmod 0755 "$BINDIR/$name.new"
        mv "$BINDIR/$name.new" "$BINDIR/$name"
    fi
done

# -- 5. the units --------------------------------------------------------------------------------

run mkdir -p "$UNITDIR"
for unit in "$SRC"/deploy/systemd/*.service; do
    run install -m 0644 "$unit" "$UNITDIR/"
done
fi  # FILES: commands and units

if [ "$SYSTEM" -eq 0 ]; then
    say "--package-tree: the package's postinst does the rest (install.sh --package-configure)"
    exit 0
elif have_systemd || { [ "$DRY" -eq 1 ] && ! staged; }; then
    # Debian starts its own mosquitto on 127.0.0.1:1883 when the package is installed.
    if [ "$DRY" -eq 1 ]; then
        say "(only if Debian's mosquitto.service is enabled or running:)"
    fi
    if [ "$DRY" -eq 1 ] || systemctl is-enabled --quiet mosquitto.service 2>/dev/null \
            || systemctl is-active --quiet mosquitto.service 2>/dev/null; then
        say "Debian's mosquitto.service wants port $PORT too: disabling it" \
            "(undo: systemctl enable --now mosquitto)"
        run systemctl disable --now mosquitto.service
        # The package's prerm enables it again when the package is removed.
        run install -d -m 0755 "$ROOT/var/lib/se3"
        run touch "$DEBIAN_MOSQUITTO_MARK"
    fi
    run systemctl daemon-reload
    # An upgrade: the units already running pick up the new code.
    run systemctl try-restart "${CORE_UNITS[@]}" se3-receiver.service
    if [ "$ENABLE" -eq 1 ]; then
        run systemctl enable --now "${CORE_UNITS[@]}"
    fi
elif staged; then
    say "--destdir: no systemctl; on the target run: systemctl daemon-reload"
else
    say "systemd is not running here: skipped daemon-reload"
    if [ "$ENABLE" -eq 1 ] && command -v systemctl >/dev/null; then
        # A root being made ready (a chroot, an image): the services start at its first
        # boot, and Debian's mosquitto does not take their port.
        if systemctl is-enabled --quiet mosquitto.service 2>/dev/null; then
            run systemctl disable mosquitto.service
            run install -d -m 0755 "$ROOT/var/lib/se3"
            run touch "$DEBIAN_MOSQUITTO_MARK"
        fi
        run systemctl enable "${CORE_UNITS[@]}"
    fi
fi

if [ "$ENABLE" -eq 0 ]; then
    say "to start the services at boot and now:"
    say "  systemctl enable --now ${CORE_UNITS[*]}"
fi
say "the console's admin password (user admin), made at its first start:"
say "  sudo cat $CONSOLE_PASS"
say "done"
