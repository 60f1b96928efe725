#!/usr/bin/env bash
# Build the Debian packages of se3-bridge: dist/se3-bridge_<version>_<arch>.deb, one per
# CPU architecture, each carrying the project and every Python dependency as wheels for
# that architecture and CPython 3.11, so that it installs with no package index.
#
#   deploy/debian/build.sh [--out DIR] [--version V] [--python PY] ARCH...   (amd64, arm64)
#
# `make dist` runs it for amd64 and arm64. It needs pip's index (or a mirror of it) for
# the foreign wheels (`pip download --platform ... --only-binary=:all:`: no emulation),
# and dpkg-deb. The files come from `deploy/install.sh --package-tree` (the same steps as
# an install from a checkout); the maintainer scripts beside this file finish the
# install on the box (deploy/install.sh --package-configure). See deploy/README.md.

set -euo pipefail
umask 022
export PYTHONDONTWRITEBYTECODE=1

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$SRC/deploy/debian
OUT=$SRC/dist
PYTHON=${PYTHON:-python3}
VERSION=
ARCHES=()

die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
say() { printf 'build.sh: %s\n' "$*"; }

while [ $# -gt 0 ]; do
    case $1 in
        --out) OUT=${2:?--out needs a directory}; shift ;;
        --version) VERSION=${2:?--version needs a version}; shift ;;
        --python) PYTHON=${2:?--python needs a path}; shift ;;
        -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) ARCHES+=("$1") ;;
    esac
    shift
done
[ ${#ARCHES[@]} -gt 0 ] || die "name at least one architecture (amd64, arm64)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"

# The wheels' platform tags per Debian architecture (Debian 12: glibc 2.36).
platforms() {
    case $1 in
        amd64) echo "--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64" ;;
        arm64) echo "--platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64" ;;
        *) die "no wheel platform known for architecture $1 (amd64, arm64)" ;;
    esac
}
for arch in "${ARCHES[@]}"; do platforms "$arch" >/dev/null; done

# <project version>+<commits>.g<commit>: a later commit makes a later package.
if [ -z "$VERSION" ]; then
    VERSION=$("$PYTHON" -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$SRC/pyproject.toml")
    if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
        VERSION+="+$(git -C "$SRC" rev-list --count HEAD).g$(git -C "$SRC" rev-parse --short HEAD)"
    fi
fi
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "not a Debian version: $VERSION"

WORK=$SRC/build/deb
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"

# The project's own wheel, once: pure Python, the same for every architecture.
say "building the project's wheel"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --wheel-dir "$WORK/wheel" "$SRC"
find "$SRC" -maxdepth 1 -name '*.egg-info' -exec rm -rf {} +
project_wheel=$(echo "$WORK"/wheel/se3_bridge-*-py3-none-any.whl)
[ -f "$project_wheel" ] || die "pip made no pure-Python wheel of the project"

for arch in "${ARCHES[@]}"; do
    tree=$WORK/$arch
    say "$arch: the package's files"
    "$SRC/deploy/install.sh" --package-tree "$tree" >"$WORK/$arch-tree.log" \
        || die "install.sh --package-tree failed: see $WORK/$arch-tree.log"

    say "$arch: wheels for CPython 3.11"
    wheels=$tree/opt/se3-bridge/wheels
    # shellcheck disable=SC2046  # the platform options are words
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --dest "$wheels" \
        --only-binary=:all: $(platforms "$arch") --python-version 3.11 --implementation cp \
        "$project_wheel"
    [ -f "$wheels/$(basename "$project_wheel")" ] || cp "$project_wheel" "$wheels/"

    doc=$tree/usr/share/doc/se3-bridge
    install -d "$doc" "$tree/usr/share/lintian/overrides"
    install -m 0644 "$HERE/copyright" "$doc/copyright"
    {
        printf 'se3-bridge (%s) unstable; urgency=medium\n\n' "$VERSION"
        printf '  * Built from %s.\n\n' \
            "$(git -C "$SRC" describe --always --dirty 2>/dev/null || echo 'a source tree')"
        printf ' -- se3-bridge maintainers <se3-bridge@example.com>  %s\n' "$(date -R)"
    } | gzip -9n >"$doc/changelog.gz"
    chmod 0644 "$doc/changelog.gz"
    install -m 0644 "$HERE/lintian-overrides" "$tree/usr/share/lintian/overrides/se3-bridge"

    install -d "$tree/DEBIAN"
    for script in postinst prerm postrm; do
        install -m 0755 "$HERE/$script" "$tree/DEBIAN/$script"
    done
    echo /etc/se3/config.toml >"$tree/DEBIAN/conffiles"
    (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
        | xargs -0 md5sum) >"$tree/DEBIAN/md5sums"
    size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
    sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
        "$HERE/control.in" >"$tree/DEBIAN/control"
    chmod 0644 "$tree/DEBIAN/control" "$tree/DEBIAN/conffiles" "$tree/DEBIAN/md5sums"

    deb=$OUT/se3-bridge_${VERSION}_$arch.deb
    rm -f "$OUT"/se3-bridge_*_"$arch".deb
    dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
    say "$deb ($(du -k "$deb" | cut -f1) KiB)"
done
