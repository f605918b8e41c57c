#!/usr/bin/env bash
# Separate "hosts" for a localnet on one machine: each validator in its own
# network namespace, all joined by veth pairs to a bridge in a hub
# namespace, with delay, jitter and loss on every host's link.
#
#   scripts/netns.sh up N [--latency 50ms] [--jitter 10ms] [--loss 1%]
#   scripts/netns.sh hosts N        the validators' addresses, comma-separated
#                                   (for `atoll localnet init --hosts`)
#   scripts/netns.sh exec I CMD...  runs CMD in validator I's namespace
#                                   (I = client: the clients' namespace)
#   scripts/netns.sh cut I in|out|both   drops validator I's traffic from,
#                                   to, or both ways with the other
#                                   validators (clients still reach it)
#   scripts/netns.sh heal I         undoes `cut`
#   scripts/netns.sh down           removes every namespace, link and rule
#   scripts/netns.sh check          says whether this machine can do it
#
# Validator I is 10.77.0.(10 + I)/24 in namespace atoll-vI; clients (the
# load generator) are 10.77.0.2 in atoll-client. Nothing is created in the
# machine's own namespace, so `down` (or a reboot) leaves nothing behind.
#
# Impairments apply to each validator's outgoing traffic, so a message
# between two validators is delayed once (one way: --latency, ± --jitter)
# and a round trip twice; loss is per packet, each way. With the kernel's
# netem queueing discipline (CONFIG_NET_SCH_NETEM), netem does both. A
# kernel without it gets the same from user space: the packets arriving
# at each validator go to a netfilter queue (iptables-legacy NFQUEUE) that
# `atoll localnet delay` serves in its namespace (the atoll binary:
# ATOLL_BIN, or the release build under CARGO_TARGET_DIR), so a message
# is delayed once on arrival instead of on departure; loss is nftables'
# random numbers on the bridge. `cut` drops packets on the
# bridge too, so neither end sees an error. Needs root, iproute2, and
# without netem nftables and iptables (installed with apt-get if absent).
set -euo pipefail

prefix=${ATOLL_NETNS_PREFIX:-atoll}
hub=$prefix-hub
client=$prefix-client
subnet=10.77.0

die() { echo "netns.sh: $*" >&2; exit 1; }
ns() { if [ "$1" = client ]; then echo "$client"; else echo "$prefix-v$1"; fi; }
addr() { if [ "$1" = client ]; then echo "$subnet.2"; else echo "$subnet.$((10 + $1))"; fi; }
validators() { ip netns list | sed -n "s/^$prefix-v\([0-9]*\).*/\1/p" | sort -n; }

# Whether namespaces and veth links can be made here; prints why not.
can_namespace() {
  [ "$(id -u)" = 0 ] || { echo "not root: network namespaces need root"; return 1; }
  command -v ip >/dev/null || { echo "iproute2 (ip) is not installed"; return 1; }
  local probe=$prefix-probe
  ip netns add "$probe" 2>/dev/null || { echo "cannot create a network namespace"; return 1; }
  if ! ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null; then
    ip netns del "$probe"; echo "cannot create veth links"; return 1
  fi
  ip netns del "$probe"
}

# Whether this kernel has netem.
has_netem() {
  local probe=$prefix-probe ok=0
  ip netns add "$probe" 2>/dev/null || return 1
  ip -n "$probe" link set lo up
  tc -n "$probe" qdisc add dev lo root netem delay 1ms 2>/dev/null || ok=1
  ip netns del "$probe"
  return $ok
}

up() {
  local n=$1; shift
  local latency="" jitter="" loss=""
  while [ $# -gt 0 ]; do
    case $1 in
      --latency) latency=$2; shift 2 ;;
      --jitter) jitter=$2; shift 2 ;;
      --loss) loss=${2%\%}; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] && [ "$n" -le 64 ] || die "N must be 2 to 64"
  [ -z "$jitter" ] || [ -n "$latency" ] || die "--jitter needs --latency"
  local why; why=$(can_namespace) || die "this machine cannot run namespaced validators: $why"
  ip netns list | grep -q "^$hub" && die "namespaces of a previous run exist; run 'scripts/netns.sh down' first"
  local netem=0; has_netem && netem=1
  if ! command -v nft >/dev/null && command -v apt-get >/dev/null; then
    echo "netns.sh: installing nftables (loss without netem, and cuts)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null 2>&1 || true
  fi
  local atoll=""
  if [ -n "$latency" ] && [ $netem = 0 ]; then
    atoll=$(atoll_bin) || die "this kernel has no netem, so --latency needs the atoll binary (atoll localnet delay): build it, or set ATOLL_BIN"
    if ! command -v iptables-legacy >/dev/null && command -v apt-get >/dev/null; then
      echo "netns.sh: installing iptables (netfilter queues for the delay)" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null 2>&1 || true
    fi
    command -v iptables-legacy >/dev/null || die "this kernel has no netem, and --latency without it needs iptables-legacy"
  fi
  if [ -n "$loss" ] && [ $netem = 0 ] && ! command -v nft >/dev/null; then
    die "--loss needs netem or nftables (nft), and this machine has neither"
  fi
  ip netns add "$hub"
  ip -n "$hub" link add br0 type bridge
  ip -n "$hub" link set br0 up
  local i
  for i in client $(seq 0 $((n - 1))); do
    local name; name=$(ns "$i")
    ip netns add "$name"
    ip -n "$hub" link add "l-$i" type veth peer name eth0 netns "$name"
    ip -n "$hub" link set "l-$i" master br0 up
    ip -n "$name" addr add "$(addr "$i")/24" dev eth0
    ip -n "$name" link set eth0 up
    ip -n "$name" link set lo up
    [ "$i" = client ] && continue
    if [ $netem = 1 ] && { [ -n "$latency" ] || [ -n "$loss" ]; }; then
      # shellcheck disable=SC2046
      tc -n "$name" qdisc add dev eth0 root netem \
        $( [ -n "$latency" ] && echo delay "$latency" ${jitter:+"$jitter"} distribution normal ) \
        $( [ -n "$loss" ] && echo loss "$loss%" ) limit 100000
    elif [ -n "$atoll" ]; then
      delay "$i" "$atoll" "$latency" "${jitter:-0ms}"
    fi
  done
  if [ -n "$loss" ] && [ $netem = 0 ]; then
    # On the bridge, so neither end sees an error: drop each packet
    # between two validators with probability loss %, in 1/10,000ths.
    local per10k; per10k=$(python3 -c "print(round(float('$loss') * 100))")
    ip netns exec "$hub" nft -f - <<EOF
table bridge atoll_loss {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip saddr != $(addr client) ip daddr != $(addr client) numgen random mod 10000 < $per10k drop
  }
}
EOF
  fi
  local how="no impairment"
  if [ $netem = 1 ] && [ -n "$latency$loss" ]; then
    how="${latency:+delay $latency${jitter:+ ± $jitter} }${loss:+loss $loss% }(netem)"
  elif [ -n "$latency$loss" ]; then
    how="${latency:+delay $latency${jitter:+ ± $jitter} (atoll localnet delay) }${loss:+loss $loss% (nftables)}"
  fi
  echo "$n validators in namespaces $prefix-v0..$prefix-v$((n - 1)) at $subnet.10..$subnet.$((9 + n)), clients in $client at $subnet.2; $how"
}

# The atoll binary, for `atoll localnet delay`.
atoll_bin() {
  local bin
  for bin in "${ATOLL_BIN:-}" "${CARGO_TARGET_DIR:-$HOME/.cache/atoll/target}/release/atoll" "$(command -v atoll || true)"; do
    if [ -n "$bin" ] && [ -x "$bin" ]; then echo "$bin"; return 0; fi
  done
  return 1
}

# Delays the packets reaching validator I in user space: `atoll localnet
# delay` serves netfilter queue 0 in its namespace (log: delay-I.log in
# the state directory), then everything arriving on eth0 goes through the
# queue. (On arrival: held on departure, a packet would still count
# against its sender's socket, and TCP would crawl.)
delay() {
  local i=$1 atoll=$2 latency=$3 jitter=$4 name; name=$(ns "$1")
  local log; log=$(state)/delay-$i.log
  ip netns exec "$name" "$atoll" localnet delay --queue 0 --latency "$latency" \
    --jitter "$jitter" --seed "$i" >"$log" 2>&1 &
  local tries=0
  until grep -q "^delaying" "$log" 2>/dev/null; do
    kill -0 $! 2>/dev/null || die "atoll localnet delay failed in $name: $(cat "$log")"
    tries=$((tries + 1)); [ $tries -lt 100 ] || die "atoll localnet delay did not start in $name"
    sleep 0.05
  done
  ip netns exec "$name" iptables-legacy -t raw -A PREROUTING -i eth0 -j NFQUEUE --queue-num 0 2>/dev/null \
    || die "this kernel has neither netem nor netfilter queues (NFQUEUE), so --latency cannot be emulated; run without it"
}

# Where the delays' logs go.
state() { local d=${TMPDIR:-/tmp}/$prefix-netns; mkdir -p "$d"; echo "$d"; }

# Bridge rules that cut validator I off from the other validators: the
# packets vanish on the way, as on a broken link; clients still reach it.
cut() {
  local i=$1 way=$2 me; me=$(addr "$i")
  command -v nft >/dev/null || die "cut needs nftables (nft)"
  heal "$i"
  local from="ip saddr $me ip daddr != $(addr client) drop;"
  local to="ip daddr $me ip saddr != $(addr client) drop;"
  local rules
  case $way in
    in) rules=$to ;;
    out) rules=$from ;;
    both) rules="$from $to" ;;
    *) die "cut I in|out|both" ;;
  esac
  ip netns exec "$hub" nft -f - <<EOF
table bridge atoll_cut_$i {
  chain forward {
    type filter hook forward priority 0; policy accept;
    $rules
  }
}
EOF
}

heal() { ip netns exec "$hub" nft delete table bridge "atoll_cut_$1" 2>/dev/null || true; }

down() {
  local i name
  for i in $(validators); do
    name=$(ns "$i")
    # What still runs there (the delay, stray validators) goes too.
    ip netns pids "$name" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$name" 2>/dev/null || true
  done
  rm -rf "${TMPDIR:-/tmp}/$prefix-netns"
  ip netns del "$client" 2>/dev/null || true
  ip netns del "$hub" 2>/dev/null || true
}

case ${1:-} in
  up) shift; [ $# -ge 1 ] || die "usage: up N [--latency D] [--jitter D] [--loss P%]"; up "$@" ;;
  hosts) [ $# -eq 2 ] || die "usage: hosts N"
    seq 0 $(($2 - 1)) | while read -r i; do addr "$i"; done | paste -sd, ;;
  exec) shift; [ $# -ge 2 ] || die "usage: exec I COMMAND..."; name=$(ns "$1"); shift; exec ip netns exec "$name" "$@" ;;
  cut) [ $# -eq 3 ] || die "usage: cut I in|out|both"; cut "$2" "$3" ;;
  heal) [ $# -eq 2 ] || die "usage: heal I"; heal "$2" ;;
  down) down ;;
  check)
    if why=$(can_namespace); then
      if has_netem; then echo "namespaces: yes; netem: yes"; else echo "namespaces: yes; netem: no (delay: atoll localnet delay on netfilter queues; loss: nftables)"; fi
    else echo "namespaces: no ($why)"; exit 1; fi ;;
  *) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
