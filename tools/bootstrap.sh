# Sourced by tools/try-node and tools/test: installs the Debian packages the
# project needs (only what is missing) and configures + builds a build dir.
# Usage: bootstrap_build DIR [meson options...], or bootstrap_main_build.

MPREG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MPREG_PACKAGES=(g++ meson ninja-build pkg-config libcaf-dev libwebsocketpp-dev libasio-dev
                rapidjson-dev libyaml-cpp-dev doctest-dev curl)

bootstrap_packages() {
  local missing=()
  for p in "${MPREG_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

bootstrap_build() {
  local dir="$1"; shift
  bootstrap_packages
  if [ ! -f "$MPREG_ROOT/$dir/build.ninja" ]; then
    meson setup "$MPREG_ROOT/$dir" "$MPREG_ROOT" "$@" >&2
  fi
  ninja -C "$MPREG_ROOT/$dir" >&2
}

# build/, which both README commands use: the default debugoptimized build
# with line tables only (-g1). Full debug info at -O2 took a third of its
# compile time; backtraces, gdb and perf still show functions, files and lines.
bootstrap_main_build() {
  bootstrap_build build -Dcpp_args=-g1
}
