#!/usr/bin/env bash
# Concord installer for an air-gapped Linux host. It runs from the unpacked
# release archive (concord-VERSION-linux-amd64/) and needs nothing from the
# network: the archive holds the static binaries, the systemd units, example
# configs and SHA256SUMS.
#
#   sudo ./install.sh install   [--root DIR] [--no-activate]   first install
#   sudo ./install.sh upgrade   [--root DIR] [--no-activate]   switch to this release, state kept
#   sudo /opt/concord/current/install.sh rollback [--root DIR] [--no-activate]
#   ./install.sh verify                                          check this archive only
#   ./install.sh status         [--root DIR]
#
# Layout under --root (default /):
#   opt/concord/releases/VERSION/   one folder per release, never changed after install
#   opt/concord/current             -> releases/VERSION (switched atomically)
#   opt/concord/previous            -> the release before it (what rollback returns to)
#   usr/local/bin/{coordinator,site-agent,concordctl} -> ../../../opt/concord/current/bin/...
#   etc/systemd/system/concord-*.service   the units of the current release
#   etc/concord/{agent,coordinator}/*.example   example configs (the real ones come in the startup kit)
#   var/lib/concord/                state: created if missing, never moved or changed
#
# Upgrade and rollback have the release they switch to open the site agent's
# state (state_dir in etc/concord/agent/agent.yaml, read only) before any
# daemon starts; if it cannot, they switch back and say why.
#
# --no-activate skips what needs a live system: the concord user, systemctl
# (daemon-reload, and stop/start of the units that run). Without it, upgrade
# and rollback stop the running Concord units, switch, and start them again.
set -euo pipefail

BINARIES=(coordinator site-agent concordctl)
UNITS=(concord-coordinator.service concord-site-agent.service)

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit "${1:-2}"
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in -h|--help|help) usage 0 ;; esac
root=/
activate=1
while [ $# -gt 0 ]; do
  case $1 in
    --root) [ $# -ge 2 ] || die "--root needs a folder"; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --no-activate) activate=0; shift ;;
    -h|--help) usage 0 ;;
    *) die "unknown argument $1 (see ./install.sh --help)" ;;
  esac
done
[ -d "$root" ] || die "--root $root: no such folder"
root=$(cd "$root" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
base=$root/opt/concord

# verify checks the release folder against its SHA256SUMS: every listed
# file matches, and no file is there that the list does not name.
verify() {
  local dir=$1
  [ -f "$dir/SHA256SUMS" ] || die "$dir has no SHA256SUMS: not a Concord release folder"
  [ -f "$dir/VERSION" ] || die "$dir has no VERSION file"
  (cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS) >&2 ||
    die "$dir: checksum mismatch (see above); the archive is damaged or was changed: do not install it"
  local listed extra
  listed=$(awk '{sub(/^\*/, "", $2); print $2}' "$dir/SHA256SUMS" | sort)
  extra=$(cd "$dir" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort | comm -13 <(echo "$listed") -)
  [ -z "$extra" ] || die "$dir: files not in SHA256SUMS: $extra"
}

version_of() { tr -d '[:space:]' < "$1/VERSION"; }

link_target() { [ -L "$1" ] && readlink "$1" || true; }

# switch points name (current or previous) at releases/VERSION atomically.
switch() {
  local name=$1 ver=$2
  ln -sfn "releases/$ver" "$base/.$name.new"
  mv -Tf "$base/.$name.new" "$base/$name"
}

running_units() {
  [ "$activate" = 1 ] || return 0
  local u
  for u in "${UNITS[@]}"; do
    systemctl is-active --quiet "$u" && echo "$u" || true
  done
}

# place installs the files of the current release outside opt/concord.
place() {
  local rel=$base/current b u
  mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/concord/agent" "$root/etc/concord/coordinator"
  for b in "${BINARIES[@]}"; do
    ln -sfn "../../../opt/concord/current/bin/$b" "$root/usr/local/bin/.$b.new"
    mv -Tf "$root/usr/local/bin/.$b.new" "$root/usr/local/bin/$b"
  done
  for u in "${UNITS[@]}"; do
    install -m 0644 "$rel/systemd/$u" "$root/etc/systemd/system/$u"
  done
  install -m 0644 "$rel/etc/agent.yaml.example" "$root/etc/concord/agent/agent.yaml.example"
  install -m 0644 "$rel/etc/coordinator.yaml.example" "$root/etc/concord/coordinator/coordinator.yaml.example"
  if [ ! -d "$root/var/lib/concord" ]; then
    install -d -m 0750 "$root/var/lib/concord"
  fi
  if [ "$activate" = 1 ]; then
    id concord >/dev/null 2>&1 || useradd --system --home-dir /var/lib/concord --shell /usr/sbin/nologin concord
    chown concord:concord "$root/var/lib/concord"
    systemctl daemon-reload
  fi
}

# selfcheck runs the release's binaries: each must print its version.
selfcheck() {
  local dir=$1 ver=$2 b out
  for b in "${BINARIES[@]}"; do
    out=$("$dir/bin/$b" --version 2>&1) || die "$dir/bin/$b --version failed: $out"
    case $out in *"$ver"*) ;; *) die "$dir/bin/$b prints '$out', not version $ver: wrong binary in the archive" ;; esac
  done
}

# unpack copies this archive's release into releases/VERSION.
unpack() {
  local ver=$1 dest=$base/releases/$1
  if [ -d "$dest" ]; then
    verify "$dest"
    say "release $ver is already in $dest (checksums match); using it"
    return
  fi
  mkdir -p "$base/releases"
  local tmp=$base/releases/.$ver.tmp
  rm -rf "$tmp"
  mkdir "$tmp"
  (cd "$here" && tar -cf - .) | (cd "$tmp" && tar -xf -)
  verify "$tmp"
  chmod -R a-w "$tmp"
  mv -T "$tmp" "$dest"
}

# agent_state prints the site agent's state folder when this host has an
# agent config and state: state_dir of etc/concord/agent/agent.yaml
# (relative to the file's folder).
agent_state() {
  local conf=$root/etc/concord/agent/agent.yaml dir
  [ -f "$conf" ] || return 0
  dir=$(sed -n 's/^state_dir:[[:space:]]*//p' "$conf" | tr -d "\"'" | sed 's/[[:space:]]*#.*$//')
  [ -n "$dir" ] || return 0
  case $dir in /*) ;; *) dir=$(dirname "$conf")/$dir ;; esac
  [ -f "$dir/agent.db" ] && echo "$dir" || true
}

# statecheck has the release now current open the agent's state (read
# only, the units stopped) before any daemon starts on it.
statecheck() {
  local state out
  state=$(agent_state)
  [ -n "$state" ] || return 0
  out=$("$base/current/bin/site-agent" privacy --state "$state" 2>&1 >/dev/null) || {
    echo "$out"
    return 1
  }
}

stop_units() { local u; for u in "$@"; do say "stopping $u"; systemctl stop "$u"; done; }
start_units() { local u; for u in "$@"; do say "starting $u"; systemctl start "$u"; done; }

case $cmd in
  verify)
    verify "$here"
    say "$here: release $(version_of "$here"), every checksum matches"
    ;;
  install|upgrade)
    verify "$here"
    ver=$(version_of "$here")
    selfcheck "$here" "$ver"
    cur=$(link_target "$base/current")
    if [ "$cur" = "releases/$ver" ]; then
      die "release $ver is already the current one under $root"
    fi
    if [ "$cmd" = install ] && [ -n "$cur" ]; then
      die "Concord is already installed (${cur#releases/}); to move to $ver run: ./install.sh upgrade"
    fi
    if [ "$cmd" = upgrade ] && [ -z "$cur" ]; then
      die "nothing to upgrade under $root: run ./install.sh install first"
    fi
    unpack "$ver"
    mapfile -t running < <(running_units)
    stop_units "${running[@]}"
    oldprev=$(link_target "$base/previous")
    [ -z "$cur" ] || switch previous "${cur#releases/}"
    switch current "$ver"
    place
    if [ -n "$cur" ] && ! err=$(statecheck); then
      switch current "${cur#releases/}"
      if [ -n "$oldprev" ]; then switch previous "${oldprev#releases/}"; else rm -f "$base/previous"; fi
      place
      start_units "${running[@]}"
      die "upgrade undone: $ver cannot open the site agent's state ($err); still on ${cur#releases/}, state unchanged"
    fi
    start_units "${running[@]}"
    if [ -n "$cur" ]; then
      say "upgraded ${cur#releases/} -> $ver; state in $root/var/lib/concord kept; back with: $base/current/install.sh rollback"
    else
      say "installed $ver in $base/releases/$ver; put the startup kit in /etc/concord/agent (or coordinator), then: systemctl enable --now concord-site-agent"
    fi
    ;;
  rollback)
    cur=$(link_target "$base/current")
    prev=$(link_target "$base/previous")
    [ -n "$cur" ] || die "nothing installed under $root"
    [ -n "$prev" ] || die "no previous release to roll back to (only ${cur#releases/} was ever installed here)"
    [ -d "$base/$prev" ] || die "previous release $base/$prev is missing; reinstall it from its archive"
    verify "$base/$prev"
    selfcheck "$base/$prev" "${prev#releases/}"
    mapfile -t running < <(running_units)
    stop_units "${running[@]}"
    switch current "${prev#releases/}"
    switch previous "${cur#releases/}"
    place
    if ! err=$(statecheck); then
      switch current "${cur#releases/}"
      switch previous "${prev#releases/}"
      place
      start_units "${running[@]}"
      die "rollback undone: ${prev#releases/} cannot open the site agent's state ($err); still on ${cur#releases/}, state unchanged"
    fi
    start_units "${running[@]}"
    say "rolled back ${cur#releases/} -> ${prev#releases/}; state in $root/var/lib/concord kept"
    ;;
  status)
    echo "current:  $(link_target "$base/current")"
    echo "previous: $(link_target "$base/previous")"
    echo "releases: $(ls "$base/releases" 2>/dev/null | tr '\n' ' ')"
    ;;
  *) die "unknown command $cmd: install, upgrade, rollback, verify or status" ;;
esac
