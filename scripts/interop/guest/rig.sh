# Helpers for rig test scripts (sourced by /init before /rig/script.sh; busybox ash).
# fd 7 is the control channel (/dev/ttyS1 <-> a unix socket of the host test).

# rig_send TEXT...          one line to the host (control channel)
rig_send() { printf '%s\n' "$*" >&7; }

# rig_step NAME [ok|fail [DETAIL...]]   a marker the host parses as a step event (default ok)
rig_step() {
  _n=$1 _s=${2:-ok}; shift; [ $# -gt 0 ] && shift
  printf '@@STEP %s %s%s\n' "$_n" "$_s" "${*:+ $*}" >&7
  echo "[rig] step $_n $_s${*:+ $*}"
}

# rig_recv [TIMEOUT_S]      read one line from the host, print it; status 1 on timeout
rig_recv() {
  if [ -n "${1:-}" ]; then IFS= read -r -t "$1" _l <&7 || return 1
  else IFS= read -r _l <&7 || return 1; fi
  printf '%s\n' "$_l"
}

# rig_wait WORD [TIMEOUT_S] wait for a host line whose first word is WORD; print the rest.
#                           Other lines are skipped. Status 1 on timeout.
rig_wait() {
  _w=$1 _t=${2:-}
  while :; do
    if [ -n "$_t" ]; then IFS= read -r -t "$_t" _l <&7 || return 1
    else IFS= read -r _l <&7 || return 1; fi
    case "$_l" in
      "$_w") echo; return 0 ;;
      "$_w "*) printf '%s\n' "${_l#"$_w" }"; return 0 ;;
    esac
  done
}

# rig_wait_path PATH [TIMEOUT_S]   wait until PATH exists (default 10 s)
rig_wait_path() {
  _i=0 _max=$(( ${2:-10} * 10 ))
  while [ ! -e "$1" ]; do
    [ "$_i" -ge "$_max" ] && return 1
    sleep 0.1; _i=$((_i + 1))
  done
}

# rig_null_blk NAME SIZE_MB   memory-backed null_blk through configfs; prints /dev/NAME
rig_null_blk() {
  [ -d /sys/kernel/config/nullb ] || modprobe null_blk nr_devices=0 || return 1
  _d=/sys/kernel/config/nullb/$1
  mkdir -p "$_d" || return 1
  echo "$2" > "$_d/size"
  echo 1 > "$_d/memory_backed"
  echo 512 > "$_d/blocksize"
  echo 1 > "$_d/power" || return 1
  rig_wait_path "/dev/$1" 5 || return 1
  echo "/dev/$1"
}

# rig_brd SIZE_MB             one brd ramdisk; prints /dev/ram0
rig_brd() {
  modprobe brd rd_nr=1 rd_size=$(( $1 * 1024 )) || return 1
  rig_wait_path /dev/ram0 5 || return 1
  echo /dev/ram0
}
