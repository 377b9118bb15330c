#!/usr/bin/env bash
# Build the NVMe/TCP interop rig: host tools (qemu, socat, tshark) and a guest image
# (Debian's kernel + an initramfs with busybox, the NVMe modules, nvme-cli and fio).
#
#   scripts/interop/build.sh [KERNEL]   build (or reuse) the image for the current packages
#                                       KERNEL: 6.1 (bookworm, default), 6.12 (trixie), 7.2 (forky);
#                                       a release name works too. Same as NVME_INTEROP_KERNEL.
#   NVME_INTEROP_CACHE=DIR              cache location (default ~/.cache/nvme-tcp-interop)
#   NVME_INTEROP_APT_UPDATE=1           force `apt-get update` first
#   NVME_INTEROP_REBUILD=1              rebuild the image even if it looks up to date
#   NVME_INTEROP_COMPRESS=none|gzip|zstd initramfs compression (default none: fastest boot
#                                       under TCG, the kernel does not have to inflate it)
#
# Output: $CACHE/images/<key>/{vmlinuz,base.cpio,fio.cpio,manifest.json} and the
# symlink $CACHE/current -> images/<key> for 6.1. The newer releases live in
# $CACHE/<release>/ with the same layout. Each release has apt/ (6.1: $CACHE/bookworm/apt):
# a private apt configuration (sources.list, lists, cache) that reaches only Debian's
# archive for that release; the system's sources are used only to install the host tools. <key> hashes the package versions and the
# rig's own guest files, so a new kernel or a changed /init makes a new image.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_CACHE="${NVME_INTEROP_CACHE:-$HOME/.cache/nvme-tcp-interop}"
COMPRESS="${NVME_INTEROP_COMPRESS:-none}"
export DEBIAN_FRONTEND=noninteractive
T0=${EPOCHREALTIME/./}

log() { local us=$(( ${EPOCHREALTIME/./} - T0 )); printf '[build %4d.%01ds] %s\n' $((us / 1000000)) $((us / 100000 % 10)) "$*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get install / download)"

# ---------------------------------------------------------------- release
KERNEL_ARG="${1:-${NVME_INTEROP_KERNEL:-6.1}}"
case "$KERNEL_ARG" in
  6.1 | bookworm) RELEASE=bookworm ;;
  6.12 | trixie) RELEASE=trixie ;;
  7.2 | forky) RELEASE=forky ;;
  *) die "unknown kernel '$KERNEL_ARG' (known: 6.1/bookworm, 6.12/trixie, 7.2/forky)" ;;
esac
# Every release, 6.1 included, goes through a private apt configuration: its own
# sources.list for Debian's archive, lists and cache, no pinning from the system. So the
# kernel a build takes never depends on when (or whether) the system last ran apt-get update.
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "no $KEYRING (package debian-archive-keyring)"
if [ "$RELEASE" = bookworm ]; then
  CACHE="$ROOT_CACHE"   # 6.1's images stay where they always were: $CACHE/images, $CACHE/current
  A="$ROOT_CACHE/bookworm/apt"
  SOURCES="deb [signed-by=$KEYRING] http://deb.debian.org/debian bookworm main
deb [signed-by=$KEYRING] http://deb.debian.org/debian bookworm-updates main
deb [signed-by=$KEYRING] http://deb.debian.org/debian-security bookworm-security main"
else
  CACHE="$ROOT_CACHE/$RELEASE"
  A="$CACHE/apt"
  SOURCES="deb [signed-by=$KEYRING] http://deb.debian.org/debian $RELEASE main"
fi
mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
echo "$SOURCES" > "$A/sources.list"
APT_OPTS=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o Dir::Etc::Preferences=/dev/null
  -o Dir::Etc::PreferencesParts=/dev/null -o Acquire::Languages=none -o APT::Sandbox::User=root)
APT_LISTS="$A/lists"
rapt-get() { apt-get "${APT_OPTS[@]}" "$@"; }
rapt-cache() { apt-cache "${APT_OPTS[@]}" "$@"; }
mkdir -p "$CACHE/debs" "$CACHE/images"
exec 9>"$CACHE/build.lock"
flock -w 1200 9 || die "another build holds $CACHE/build.lock"
rm -rf "$CACHE"/work.* "$CACHE"/dl.* "$CACHE"/images/*.tmp   # leftovers of an interrupted build

# ---------------------------------------------------------------- host tools
HOST_PKGS=(qemu-system-x86 socat tshark)
pkg_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

need_update=0
[ "${NVME_INTEROP_APT_UPDATE:-0}" = 1 ] && need_update=1
CHECK_PKGS=(linux-image-amd64 busybox-static nvme-cli fio)
policy=$(rapt-cache policy "${CHECK_PKGS[@]}" 2>/dev/null || true)
have=$(grep -c 'Candidate: [^(]' <<<"$policy" || true)
[ "$have" = "${#CHECK_PKGS[@]}" ] || need_update=1
host_have=$(apt-cache policy "${HOST_PKGS[@]}" 2>/dev/null | grep -c 'Candidate: [^(]' || true)
if [ "$need_update" = 1 ]; then
  log "apt-get update ($RELEASE)"
  rapt-get update -q >&2
fi
if [ "$host_have" != "${#HOST_PKGS[@]}" ]; then
  log "apt-get update (host tools)"
  apt-get update -q >&2
fi

missing=()
for p in "${HOST_PKGS[@]}"; do pkg_installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing host tools: ${missing[*]}"
  # tshark's wireshark-common asks whether non-root users may capture: answer no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# ---------------------------------------------------------------- package set
# Shared-library closure: breadth-first over Depends/Pre-Depends, following only
# library packages (lib*, zlib*), first alternative of each or-group. nvme-cli's
# uuid-runtime and fio's python3 / init-system-helpers are not needed to run the binaries.
lib_closure() {
  local -A seen=()
  local level=("$@") next p dep
  for p in "$@"; do seen[$p]=1; done
  while [ "${#level[@]}" -gt 0 ]; do
    next=()
    while read -r dep; do
      [ -n "$dep" ] || continue
      [ -n "${seen[$dep]:-}" ] && continue
      seen[$dep]=1
      next+=("$dep")
    done < <(rapt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
               --no-replaces --no-enhances "${level[@]}" 2>/dev/null \
             | awk '
                 /^[^ ]/ { alt = 0; next }
                 /^  [|]?(Pre)?Depends:/ {
                   if (alt) { alt = ($1 ~ /^\|/); next }
                   alt = ($1 ~ /^\|/); name = $2
                   if (name ~ /^</) next
                   sub(/:any$/, "", name)
                   if (name ~ /^(lib|zlib)/) print name
                 }')
    level=("${next[@]}")
  done
  printf '%s\n' "${!seen[@]}" | sort
}

# The package set only changes when apt's lists or this script change: remember it.
LISTS_ID=$( { ls -l --time-style=+%s "$APT_LISTS/" 2>/dev/null; sha256sum "$HERE/build.sh"; } | sha256sum | cut -c1-16)
RESOLVED="$CACHE/resolved.$LISTS_ID"
if [ -s "$RESOLVED" ]; then
  mapfile -t ALL_PKGS < <(sed -n 's/^all //p' "$RESOLVED")
  mapfile -t FIO_PKGS < <(sed -n 's/^fio //p' "$RESOLVED")
  KPKG=$(sed -n 's/^kernel //p' "$RESOLVED")
  mapfile -t KPKGS < <(sed -n 's/^kpkg //p' "$RESOLVED")
else
  log "resolving package set"
  # The concrete kernel package behind the linux-image-amd64 metapackage.
  KPKG=$(rapt-cache show --no-all-versions linux-image-amd64 | sed -n 's/^Depends: *//p' \
    | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | sed -n 1p)
  [ -n "$KPKG" ] || die "cannot resolve the kernel package of linux-image-amd64 in $RELEASE"
  # forky splits the kernel: linux-image-* is nearly empty and depends on linux-binary-*
  # (vmlinuz), linux-modules-* (the module tree) and linux-base-* (modules.builtin, which
  # modprobe needs to know a built-in module). Older releases have it all in one.
  KPKGS=("$KPKG" $(rapt-cache show --no-all-versions "$KPKG" | sed -n 's/^Depends: *//p' \
    | tr ',' '\n' | sed -n 's/^ *\(linux-\(base\|binary\|modules\)-[0-9][^ ]*\).*/\1/p'))
  BASE_PKGS=("${KPKGS[@]}" busybox-static $(lib_closure nvme-cli))
  FIO_PKGS=($(lib_closure fio))
  ALL_PKGS=($(printf '%s\n' "${BASE_PKGS[@]}" "${FIO_PKGS[@]}" | sort -u))
  rm -f "$CACHE"/resolved.*
  { echo "kernel $KPKG"; printf 'kpkg %s\n' "${KPKGS[@]}"; printf 'all %s\n' "${ALL_PKGS[@]}"; printf 'fio %s\n' "${FIO_PKGS[@]}"; } > "$RESOLVED.tmp"
  mv "$RESOLVED.tmp" "$RESOLVED"
fi
log "$RELEASE: kernel ${KPKGS[*]}, ${#ALL_PKGS[@]} packages"

# One apt-cache call for the candidate version, pool file name and sha256 of each.
declare -A VER=() POOLFILE=() SHA=()
while IFS='|' read -r p v f h; do
  [ -n "${VER[$p]:-}" ] && continue
  VER[$p]=$v POOLFILE[$p]=$f SHA[$p]=$h
done < <(rapt-cache show --no-all-versions "${ALL_PKGS[@]}" | awk '
  /^Package: /  { p = $2 }
  /^Version: /  { v = $2 }
  /^Filename: / { f = $2 }
  /^SHA256: /   { h = $2 }
  /^$/ { if (p != "") print p "|" v "|" f "|" h; p = v = f = h = "" }
  END  { if (p != "") print p "|" v "|" f "|" h }')
PKGLIST=""
for p in "${ALL_PKGS[@]}"; do
  [ -n "${VER[$p]:-}" ] && [ -n "${SHA[$p]:-}" ] || die "apt has no candidate for $p"
  PKGLIST+="$p=${VER[$p]}"$'\n'
done

# The image key: package versions + this script. guest/init and guest/rig.sh are copied
# into the image too, but boot.ts overlays the current ones on every run, so editing
# them needs no rebuild.
KEY=$( { printf '%s' "$PKGLIST"; echo "compress=$COMPRESS"; cat "$HERE/build.sh"; } | sha256sum | cut -c1-16)
OUT="$CACHE/images/$KEY"

if [ -f "$OUT/manifest.json" ] && [ "${NVME_INTEROP_REBUILD:-0}" != 1 ]; then
  if [ "$(readlink "$CACHE/current" 2>/dev/null)" != "images/$KEY" ]; then
    ln -sfn "images/$KEY" "$CACHE/current.tmp" && mv -T "$CACHE/current.tmp" "$CACHE/current"
  fi
  log "up to date: $OUT"
  echo "$OUT"
  exit 0
fi

# ---------------------------------------------------------------- download + verify
deb_path() { echo "$CACHE/debs/$(basename "${POOLFILE[$1]}")"; } # pool file name, no epoch

declare -A DEB=()
todo=()
for p in "${ALL_PKGS[@]}"; do
  DEB[$p]=$(deb_path "$p")
  if [ -f "${DEB[$p]}" ] && [ -f "${DEB[$p]}.sha256ok" ]; then continue; fi
  todo+=("$p=${VER[$p]}")
done
if [ "${#todo[@]}" -gt 0 ]; then
  log "downloading ${#todo[@]} packages"
  dl=$(mktemp -d "$CACHE/dl.XXXXXX")
  chmod 755 "$dl"
  (cd "$dl" && rapt-get download -q "${todo[@]}" >&2 2> >(grep -v 'unsandboxed' >&2))
  for f in "$dl"/*.deb; do
    p=$(dpkg-deb -f "$f" Package)
    mv "$f" "${DEB[$p]}"
  done
  rmdir "$dl"
fi
for p in "${ALL_PKGS[@]}"; do
  f=${DEB[$p]}
  [ -f "$f" ] || die "missing $f"
  [ -f "$f.sha256ok" ] && continue
  want=${SHA[$p]}
  got=$(sha256sum "$f" | cut -d' ' -f1)
  [ "$want" = "$got" ] || { rm -f "$f"; die "sha256 mismatch for $p (apt: $want, file: $got)"; }
  echo "$got" > "$f.sha256ok"
done
log "packages verified (sha256 against apt's records)"

# ---------------------------------------------------------------- extract
WORK="$CACHE/work.$KEY"
rm -rf "$WORK"
mkdir -p "$WORK/staging"
ST="$WORK/staging"
declare -A IS_KPKG=()
for p in "${KPKGS[@]}"; do IS_KPKG[$p]=1; done
for p in "${ALL_PKGS[@]}"; do
  if [ -n "${IS_KPKG[$p]:-}" ]; then continue; fi
  dpkg-deb -x "${DEB[$p]}" "$ST"
done
# The kernel packages last (vmlinuz, the module tree; about 400 MB unpacked).
for p in "${KPKGS[@]}"; do dpkg-deb -x "${DEB[$p]}" "$ST"; done
log "extracted"

BB="$ST/bin/busybox"
[ -x "$BB" ] || BB="$ST/usr/bin/busybox"   # merged-/usr releases (trixie on)
[ -x "$BB" ] || die "busybox-static did not provide busybox"
# bookworm keeps modules in /lib/modules, trixie and forky in /usr/lib/modules.
STMODDIR=
for d in "$ST"/lib/modules/* "$ST"/usr/lib/modules/*; do
  if [ -d "$d/kernel" ]; then STMODDIR=${d#"$ST"/}; fi
done
[ -n "$STMODDIR" ] || die "no module tree in ${KPKGS[*]}"
KVER=${STMODDIR##*/}
MODDIR="lib/modules/$KVER"   # where the guest's busybox modprobe looks
# The matrix names kernels by their release's version when it was set up; forky moves on.
case "$RELEASE:$KVER" in
  bookworm:6.1.* | trixie:6.12.* | forky:7.2.*) ;;
  *) log "note: $RELEASE's linux-image-amd64 is now $KVER (the matrix calls this kernel $KERNEL_ARG): building it" ;;
esac
if [ "$STMODDIR" != "$MODDIR" ]; then
  mkdir -p "$ST/lib/modules"
  rm -rf "$ST/$MODDIR"
  mv "$ST/$STMODDIR" "$ST/$MODDIR"
fi
# trixie and forky compress modules (.ko.xz / .ko.zst): busybox insmod loads neither.
# Unpack the parts of the tree the rig can need (crypto and library helpers, configfs,
# keys, virtio, the NIC, block and NVMe) and drop the other compressed modules, so that
# depmod sees only plain .ko files.
if [ -n "$(find "$ST/$MODDIR" \( -name '*.ko.xz' -o -name '*.ko.zst' \) -print -quit)" ]; then
  K="$ST/$MODDIR/kernel"
  keep=()
  for d in arch crypto lib fs/configfs security net/core drivers/nvme drivers/block drivers/virtio drivers/net drivers/char; do
    [ -d "$K/$d" ] && keep+=("$K/$d")
  done
  find "${keep[@]}" -name '*.ko.xz' -print0 | xargs -0 -r -P2 -n64 xz -d
  find "${keep[@]}" -name '*.ko.zst' -print0 | xargs -0 -r -P2 -n64 zstd -d -q --rm
  find "$ST/$MODDIR" \( -name '*.ko.xz' -o -name '*.ko.zst' \) -delete
  log "modules decompressed"
fi
"$BB" depmod -b "$ST" "$KVER"
log "depmod (full tree)"

# The uncompressed kernel for qemu's PVH direct boot: skips SeaBIOS's bzImage loader and
# the in-guest inflate of the kernel (XZ in Debian), about 2 s per boot under TCG.
extract_vmlinux() { # bzImage out
  local magic dec off
  for pair in '\xfd7zXZ\x00|xz -dc --single-stream' '\x1f\x8b\x08|gzip -dc' '\x28\xb5\x2f\xfd|zstd -dcq'; do
    magic=${pair%%|*} dec=${pair#*|}
    while read -r off; do
      tail -c +$((off + 1)) "$1" | $dec > "$2" 2>/dev/null || true
      if [ "$(head -c 4 "$2" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; then return 0; fi
    done < <(LC_ALL=C grep -obUaP "$magic" "$1" | cut -d: -f1 | sed -n 1,3p)
  done
  rm -f "$2"
  return 1
}
# In the background while the initramfs is assembled (the inflate takes a few seconds).
BOOT=bzimage
if [ -f "$ST/boot/vmlinuz-$KVER" ]; then
  cp "$ST/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
elif [ -f "$ST/$MODDIR/vmlinuz" ]; then   # forky's linux-binary-*
  cp "$ST/$MODDIR/vmlinuz" "$WORK/vmlinuz"
else
  die "no vmlinuz for $KVER in ${KPKGS[*]}"
fi
(
  if command -v readelf >/dev/null && extract_vmlinux "$WORK/vmlinuz" "$WORK/vmlinux"; then
    # XEN_ELFNOTE_PHYS32_ENTRY (type 0x12) marks a PVH entry point (CONFIG_PVH).
    notes=$(readelf -n "$WORK/vmlinux" 2>/dev/null || true)
    if grep -q 'Unknown note type: (0x00000012)' <<<"$notes"; then exit 0; fi
  fi
  rm -f "$WORK/vmlinux"
  exit 1
) &
VMLINUX_JOB=$!
trap 'kill "$VMLINUX_JOB" 2>/dev/null || true' EXIT

# ---------------------------------------------------------------- modules
# Everything /init or a test script may need; their modules.dep closure is added.
WANT_MODS=(
  crc32c_generic crc32c-intel crct10dif_generic crc64_rocksoft_generic libcrc32c crc-t10dif crc64-rocksoft
  configfs virtio_pci virtio_net
  nvme-core nvme-fabrics nvme-tcp nvmet nvmet-tcp null_blk brd
)
declare -A MODPATH=() MODDEPS=()
while IFS= read -r line; do
  path=${line%%:*}
  deps=${line#*:}
  name=$(basename "$path"); name=${name%%.ko*}; name=${name//-/_}
  MODPATH[$name]=$MODDIR/$path
  MODDEPS[$name]=$deps
done < "$ST/$MODDIR/modules.dep"

declare -A VISITED=()
ORDER=()
visit() { # post-order DFS: dependencies first
  local n=${1//-/_} d dn
  [ -n "${VISITED[$n]:-}" ] && return 0
  VISITED[$n]=1
  [ -n "${MODPATH[$n]:-}" ] || { log "note: module $n is not in ${KPKGS[*]} (built in?)"; return 0; }
  for d in ${MODDEPS[$n]}; do
    dn=$(basename "$d"); dn=${dn%%.ko*}
    visit "$dn"
  done
  ORDER+=("$n")
}
for m in "${WANT_MODS[@]}"; do visit "$m"; done

# ---------------------------------------------------------------- base root
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib64,proc,sys,dev,tmp,run,mnt,root,etc/nvme,rig,"$MODDIR"}
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3
cp "$BB" "$R/bin/busybox"
while read -r applet; do
  [ -n "$applet" ] || continue
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$R/$(dirname "$applet")"
  ln -sf /bin/busybox "$R/$applet"
done < <("$BB" --list-full)
for n in "${ORDER[@]}"; do
  mkdir -p "$R/$(dirname "${MODPATH[$n]}")"
  cp "$ST/${MODPATH[$n]}" "$R/${MODPATH[$n]}"
done
cp "$ST/$MODDIR"/modules.{order,builtin} "$R/$MODDIR/" 2>/dev/null || true
"$BB" depmod -b "$R" "$KVER"
printf '%s\n' "${ORDER[@]}" > "$R/etc/rig-modules.order"


LD="$ST/lib64/ld-linux-x86-64.so.2"
[ -f "$LD" ] || LD="$ST/usr/lib64/ld-linux-x86-64.so.2"   # merged-/usr libc6
[ -f "$LD" ] || die "no dynamic loader in libc6"
LIBPATH="$ST/lib/x86_64-linux-gnu:$ST/usr/lib/x86_64-linux-gnu"
for d in "$ST"/usr/lib/x86_64-linux-gnu/*/; do  # e.g. ceph/, libibverbs private dirs
  [ -d "$d" ] && LIBPATH+=":${d%/}"
done
copy_elf() { # root binary... : copy binaries and their shared-library closure into root
  local root=$1; shift
  local bin lib
  for bin in "$@"; do
    mkdir -p "$root/$(dirname "$bin")"
    cp -L "$ST/$bin" "$root/$bin"
    "$LD" --library-path "$LIBPATH" --list "$ST/$bin" > "$WORK/ldlist" 2>&1 \
      || die "ld.so --list failed for $bin: $(cat "$WORK/ldlist")"
    if grep -q 'not found' "$WORK/ldlist"; then die "unresolved libraries for $bin: $(grep 'not found' "$WORK/ldlist")"; fi
    # A library found outside the staging tree would come from this machine's release.
    if awk '$2 == "=>" && $3 ~ /^\// { print $3 }' "$WORK/ldlist" | grep -qv "^$ST/"; then
      die "libraries of $bin resolved outside the $RELEASE packages: $(awk '$2 == "=>" { print $3 }' "$WORK/ldlist" | grep -v "^$ST/" | tr '\n' ' ')"
    fi
    while read -r lib; do
      # ld.so --list also names the interpreter by its absolute path: the loader of the
      # staging tree is copied below instead.
      [ "${lib#"$ST"/}" != "$lib" ] || continue
      rel=${lib#"$ST"/}
      [ -e "$root/$rel" ] && continue
      mkdir -p "$root/$(dirname "$rel")"
      cp -L "$lib" "$root/$rel"
    done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' "$WORK/ldlist" | sort -u)
  done
}
copy_elf "$R" usr/sbin/nvme
cp -L "$LD" "$R/lib64/ld-linux-x86-64.so.2"

# A stable host identity per cache, the same for every release (tests may overwrite
# /etc/nvme/* at run time).
if [ ! -f "$ROOT_CACHE/hostid" ]; then
  cat /proc/sys/kernel/random/uuid > "$ROOT_CACHE/hostid"
fi
HOSTID=$(cat "$ROOT_CACHE/hostid")
echo "$HOSTID" > "$R/etc/nvme/hostid"
echo "nqn.2014-08.org.nvmexpress:uuid:$HOSTID" > "$R/etc/nvme/hostnqn"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
cp "$HERE/guest/init" "$R/init"
cp "$HERE/guest/rig.sh" "$R/etc/rig.sh"
chmod 755 "$R/init"

# ---------------------------------------------------------------- fio layer
F="$WORK/fio"
mkdir -p "$F"
copy_elf "$F" usr/bin/fio
# Drop what the base layer already has (same path, same content).
while read -r f; do
  rel=${f#"$F"/}
  if [ -f "$R/$rel" ] && cmp -s "$f" "$R/$rel"; then rm -f "$f"; fi
done < <(find "$F" -type f)

# ---------------------------------------------------------------- cpio archives
mkcpio() { # dir out
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) > "$2.raw"
  case "$COMPRESS" in
    none) mv "$2.raw" "$2" ;;
    gzip) gzip -1 -c "$2.raw" > "$2"; rm "$2.raw" ;;
    zstd) zstd -q -3 -c "$2.raw" > "$2"; rm "$2.raw" ;;
    *) die "unknown NVME_INTEROP_COMPRESS=$COMPRESS" ;;
  esac
}
mkcpio "$R" "$WORK/base.cpio"
mkcpio "$F" "$WORK/fio.cpio"
log "initramfs written"
if wait "$VMLINUX_JOB"; then BOOT=pvh; fi
log "kernel boot: $BOOT"

du_k() { du -k "$1" | cut -f1; }
{
  echo "{"
  echo "  \"key\": \"$KEY\","
  echo "  \"release\": \"$RELEASE\","
  echo "  \"kernelPackage\": \"$KPKG\","
  echo "  \"kernelVersion\": \"$KVER\","
  echo "  \"kernelRelease\": \"${VER[$KPKG]}\","
  echo "  \"compress\": \"$COMPRESS\","
  echo "  \"kernelBoot\": \"$BOOT\","
  echo "  \"hostnqn\": \"nqn.2014-08.org.nvmexpress:uuid:$HOSTID\","
  echo "  \"hostid\": \"$HOSTID\","
  echo "  \"baseKiB\": $(du_k "$WORK/base.cpio"),"
  echo "  \"fioKiB\": $(du_k "$WORK/fio.cpio"),"
  echo "  \"modules\": [$(printf '"%s",' "${ORDER[@]}" | sed 's/,$//')],"
  echo "  \"packages\": {"
  for p in "${ALL_PKGS[@]}"; do echo "    \"$p\": \"${VER[$p]}\","; done | sed '$ s/,$//'
  echo "  }"
  echo "}"
} > "$WORK/manifest.json"

rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
mv "$WORK/vmlinuz" "$WORK/base.cpio" "$WORK/fio.cpio" "$OUT.tmp/"
if [ "$BOOT" = pvh ]; then mv "$WORK/vmlinux" "$OUT.tmp/"; fi
mv "$WORK/manifest.json" "$OUT.tmp/manifest.json"
PREV=$(readlink "$CACHE/current" 2>/dev/null || true)
if [ -d "$OUT" ]; then rm -rf "$OUT.old"; mv "$OUT" "$OUT.old"; fi
mv "$OUT.tmp" "$OUT"
ln -sfn "images/$KEY" "$CACHE/current.tmp" && mv -T "$CACHE/current.tmp" "$CACHE/current"
rm -rf "$WORK" "$OUT.old"
# Older images go, except the one `current` pointed to until now: a run starting this
# very moment may still be copying from it.
if [ "${NVME_INTEROP_KEEP_OLD:-0}" != 1 ]; then
  for d in "$CACHE"/images/*; do
    [ "$d" = "$OUT" ] || [ "images/${d##*/}" = "$PREV" ] || rm -rf "$d"
  done
fi
log "done: $OUT (base $(du -h "$OUT/base.cpio" | cut -f1), fio $(du -h "$OUT/fio.cpio" | cut -f1))"
echo "$OUT"
