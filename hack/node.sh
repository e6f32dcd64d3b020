#!/usr/bin/env bash
# The real node of the local cluster: containerd v2 + runc + kubelet, node name "localhost",
# beside the kwokctl control plane of hack/cluster-up.sh. Everything listens on 127.0.0.1, and
# all its state lives in $STATE_DIR/node (see hack/README.md, "The real node").
#
#   node.sh up     starts or reuses the node; after a kill (kubelet, containerd, shims or the
#                  control plane) it first clears what the dead processes left: shims, pod
#                  processes, mounts, network namespaces, kubepods cgroups. Needs a running
#                  control plane ($STATE_DIR/kubeconfig). Prints warm|started|recovered.
#   node.sh down   stops the node and its pods and deletes $STATE_DIR/node.
#
# Env: KUBELET_PORT (10250), KUBELET_HEALTHZ_PORT (10248), NODE_READY_TIMEOUT (s, 120),
# KUBELET_RESOLV_CONF (resolv.conf for pods; default one with nameserver 127.0.0.1 only).
# Called by cluster-up.sh and cluster-down.sh, which hold the cluster lock. Two state dirs
# can each run a node at the same time if they use other ports (KUBELET_*, and
# KUBE_APISERVER_PORT for cluster-up.sh): each node's pods live under its own cgroup root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib-node.sh
source "$here/lib-node.sh"

kubelet_port="${KUBELET_PORT:-10250}"
healthz_port="${KUBELET_HEALTHZ_PORT:-10248}"
ready_timeout="${NODE_READY_TIMEOUT:-120}"
kwok_pki="$STATE_DIR/kwok/clusters/$CLUSTER_NAME/pki"
ca_crt="$kwok_pki/ca.crt"
ca_key="$kwok_pki/ca.key"
cluster_kubeconfig="$STATE_DIR/kubeconfig"
ctd_config="$CTD_DIR/config.toml"
ctd_pid="$CTD_DIR/containerd.pid"
kubelet_config="$KUBELET_DIR/config.yaml"
kubelet_kubeconfig="$KUBELET_DIR/kubeconfig"
kubelet_pid="$KUBELET_DIR/kubelet.pid"
pki="$KUBELET_DIR/pki"
cni_dir="$NODE_DIR/cni"
# The parent cgroup of this node's pods (kubelet cgroupRoot; "kubepods" below it), one per
# state dir, so that clean-up here never touches another node's pods.
cgroup_root="incident-node-$(printf %s "$STATE_DIR" | sha256sum | cut -c1-8)"

kc() { "$K8S_BIN/kubectl" --kubeconfig "$cluster_kubeconfig" --request-timeout=10s "$@"; }

# pids_matching TEXT: pids of processes whose command line contains TEXT (our own paths only).
pids_matching() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd="$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" || continue
    [[ "$cmd" == *"$1"* ]] && echo "${p#/proc/}"
  done
  return 0
}
# alive PIDFILE TEXT: the pid file names a live (not zombie) process whose command line has TEXT.
alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(tr -dc 0-9 <"$1")"
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$2"
}
kill_pids() { # kill_pids SIGNAL PID...: then waits up to 5 s for them to be gone
  local sig="$1" p left
  shift
  (( $# )) || return 0
  kill "-$sig" "$@" 2>/dev/null || true
  for _ in $(seq 50); do
    left=0
    for p in "$@"; do
      if [[ -d "/proc/$p" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null; then
        left=1
        break
      fi
    done
    (( left )) || return 0
    sleep 0.1
  done
}
# ensure_cgroup_root: the kubelet wants its cgroupRoot to exist in every hierarchy. A new
# cpuset cgroup starts with no CPUs and memory nodes; it gets its parent's.
ensure_cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    h="${h%/}"
    [[ -d "$h/$cgroup_root" ]] || mkdir "$h/$cgroup_root" 2>/dev/null || continue
    if [[ -f "$h/cpuset.cpus" && ! -s "$h/$cgroup_root/cpuset.cpus" ]]; then
      cat "$h/cpuset.cpus" >"$h/$cgroup_root/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h/$cgroup_root/cpuset.mems"
    fi
  done
}

# reset_runtime [all]: after a kill, or before a fresh start. Kills what belongs to this node
# (kubelet, containerd, shims of our socket, every process in its pods' cgroups), unmounts
# everything below $NODE_DIR (container rootfs, sandbox shm, netns, pod volumes), removes
# containerd's volatile state, stale shim sockets and the pods' cgroups. Images and
# containerd's metadata stay; "all" also removes the kubelet's root (pods of a cluster that
# no longer exists).
reset_runtime() {
  local pids m roots=("$cgroup_root")
  # A node configured before pods had their own cgroup root used /kubepods.
  [[ -f "$kubelet_config" ]] && ! grep -q '^cgroupRoot:' "$kubelet_config" && roots+=(kubepods)
  mapfile -t pids < <(pids_matching "$kubelet_config")
  kill_pids KILL "${pids[@]}"
  mapfile -t pids < <(pids_matching "$ctd_config")
  kill_pids KILL "${pids[@]}"
  mapfile -t pids < <(pids_matching "-address $CTD_SOCK")
  kill_pids KILL "${pids[@]}"
  for _ in 1 2 3; do
    mapfile -t pids < <(for m in "${roots[@]}"; do
      find /sys/fs/cgroup/*/"$m" -name cgroup.procs -exec cat {} + 2>/dev/null
    done | sort -u)
    (( ${#pids[@]} )) || break
    kill_pids KILL "${pids[@]}"
  done
  # Deepest first; a lazy unmount for what is still busy.
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(awk -v p="$NODE_DIR/" 'index($5, p) == 1 { print length($5) "\t" $5 }' /proc/self/mountinfo |
           sort -rn | cut -f2- | sed 's/\\040/ /g')
  rm -rf "$CTD_DIR/state" "$cni_dir/ipam" "$CTD_SOCK" "$CTD_SOCK.ttrpc" "$ctd_pid" "$kubelet_pid"
  # Shims always put their sockets in /run/containerd/s: remove those nobody listens on.
  if [[ -d "$SHIM_SOCKET_DIR" ]]; then
    local listening
    listening="$(ss -xlH 2>/dev/null | awk '{ print $5 }')"
    for m in "$SHIM_SOCKET_DIR"/*; do
      [[ -S "$m" ]] && ! grep -qxF "$m" <<<"$listening" && rm -f "$m"
    done
  fi
  while read -r m; do rmdir "$m" 2>/dev/null || true; done < <(
    for m in "${roots[@]}"; do find /sys/fs/cgroup/*/"$m" -depth -type d 2>/dev/null; done)
  if [[ "${1:-}" == all ]]; then
    rm -rf "$KUBELET_ROOT" "$NODE_DIR/pod-logs"
  fi
}

# close_fds: closes inherited descriptors above 2 (e.g. the cluster lock) in a daemon's shell.
close_fds() {
  local fd
  for fd in "/proc/$BASHPID/fd/"*; do
    fd="${fd##*/}"
    (( fd > 2 )) && eval "exec $fd>&-" 2>/dev/null
  done
  return 0
}
# start_daemon PIDFILE LOG CMD...: runs CMD in its own session, detached from this script.
start_daemon() {
  local pidfile="$1" logfile="$2"
  shift 2
  ( close_fds; exec setsid "$@" >>"$logfile" 2>&1 </dev/null ) &
  echo $! >"$pidfile"
}
wait_until() { # wait_until SECONDS CMD...
  local end=$(( $(date +%s) + $1 ))
  shift
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < end )) || return 1
    sleep 0.2
  done
}

write_containerd_config() {
  mkdir -p "$CTD_DIR" "$cni_dir/bin" "$cni_dir/net.d"
  cp "$here/cni/incident-loopback" "$cni_dir/bin/incident-loopback"
  cat >"$cni_dir/net.d/10-incident-loopback.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "incident-loopback", "plugins": [{"type": "incident-loopback"}]}
EOF
  cat >"$ctd_config.tmp" <<EOF
# Written by hack/node.sh; edits are overwritten.
version = 3
root = "$CTD_DIR/root"
state = "$CTD_DIR/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$CTD_SOCK"

[plugins.'io.containerd.internal.v1.opt']
  path = "$CTD_DIR/opt"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"

[plugins.'io.containerd.cri.v1.runtime']
  # No CAP_SYS_RESOURCE here: lowering oom_score_adj fails, and without this every sandbox
  # fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$cni_dir/bin"]
    conf_dir = "$cni_dir/net.d"
    max_conf_num = 1
    use_internal_loopback = true
EOF
  mv -f "$ctd_config.tmp" "$ctd_config"
}

start_containerd() {
  mkdir -p "$CTD_DIR"
  start_daemon "$ctd_pid" "$CTD_DIR/containerd.log" env PATH="$CTD_BIN:$PATH" \
    "$CTD_BIN/containerd" --config "$ctd_config"
  wait_until 30 containerd_up || { tail -n 30 "$CTD_DIR/containerd.log" >&2; die "containerd did not start"; }
}

# The kubelet's certificates, signed by the cluster CA (kwokctl's pki): a client certificate
# for the API server (CN system:node:localhost, O system:nodes: the Node authorizer and
# NodeRestriction apply) and a serving certificate for localhost/127.0.0.1, which the API
# server verifies (--kubelet-certificate-authority). Renewed when the CA changes.
issue_certs() {
  local fp
  fp="$(sha256sum "$ca_crt" | cut -c1-64)"
  [[ -s "$pki/ca.sha256" && "$(cat "$pki/ca.sha256")" == "$fp" && -s "$pki/kubelet.crt" ]] && return 0
  mkdir -p "$pki"
  chmod 700 "$pki"
  sign() { # sign NAME SUBJECT EXTENSIONS
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$1.csr" -CA "$ca_crt" -CAkey "$ca_key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -out "$pki/$1.crt" \
      -extfile <(printf '%s\n' "$3") 2>/dev/null
    rm -f "$pki/$1.csr"
  }
  sign kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" \
    "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  sign kubelet "/CN=$NODE_NAME" \
    "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
  cp "$ca_crt" "$pki/ca.crt"
  echo "$fp" >"$pki/ca.sha256"
}

write_kubelet_config() {
  local server resolv
  server="$(kc config view -o jsonpath='{.clusters[0].cluster.server}')"
  [[ "$server" == https://127.0.0.1:* ]] || die "unexpected API server address '$server'"
  mkdir -p "$KUBELET_DIR" "$KUBELET_ROOT" "$NODE_DIR/pod-logs"
  resolv="${KUBELET_RESOLV_CONF:-$KUBELET_DIR/resolv.conf}"
  [[ -n "${KUBELET_RESOLV_CONF:-}" ]] || printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$resolv"
  cat >"$kubelet_kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}
users:
- name: kubelet
  user: {client-certificate: "$pki/kubelet-client.crt", client-key: "$pki/kubelet-client.key"}
contexts:
- name: kubelet
  context: {cluster: local, user: kubelet}
current-context: kubelet
EOF
  cat >"$kubelet_config" <<EOF
# Written by hack/node.sh; edits are overwritten.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These hosts have cgroup v1 (hybrid); kubelet 1.37 refuses v1 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_root
containerRuntimeEndpoint: unix://$CTD_SOCK
imageServiceEndpoint: unix://$CTD_SOCK
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 5s}
podLogsDir: $NODE_DIR/pod-logs
resolvConf: $resolv
failSwapOn: false
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
volumePluginDir: $KUBELET_DIR/volume-plugins
nodeStatusUpdateFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
shutdownGracePeriod: 0s
EOF
}

start_kubelet() {
  ensure_cgroup_root
  start_daemon "$kubelet_pid" "$KUBELET_DIR/kubelet.log" "$K8S_BIN/kubelet" \
    --config "$kubelet_config" --kubeconfig "$kubelet_kubeconfig" --root-dir "$KUBELET_ROOT" \
    --cert-dir "$pki" --hostname-override "$NODE_NAME" --node-labels type=real --v 1
}
kubelet_healthy() { [[ "$(curl -s --max-time 2 "http://127.0.0.1:$healthz_port/healthz")" == ok ]]; }
node_ready() {
  [[ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

up() {
  [[ -s "$cluster_kubeconfig" && -s "$ca_key" ]] || die "no control plane (run hack/cluster-up.sh)"
  local k cold=0 mode=warm
  [[ -x "$K8S_BIN/kubelet" ]] || die "no $K8S_BIN/kubelet (run hack/build-k8s.sh)"
  for k in containerd containerd-shim-runc-v2 ctr; do
    [[ -x "$CTD_BIN/$k" ]] || die "no $CTD_BIN/$k (run hack/build-runtime.sh)"
  done
  [[ -d "$CTD_DIR/root" ]] || cold=1
  local ca_fp=""
  ca_fp="$(sha256sum "$ca_crt" | cut -c1-64)"
  local new_cluster=0
  [[ -s "$pki/ca.sha256" && "$(cat "$pki/ca.sha256")" == "$ca_fp" ]] || new_cluster=1

  if (( new_cluster )) || ! alive "$ctd_pid" "$ctd_config" || ! containerd_up; then
    (( cold )) && mode=started || mode=recovered
    (( cold )) || note "node: clearing what the previous containerd/kubelet left behind"
    if (( new_cluster )); then reset_runtime all; else reset_runtime; fi
    write_containerd_config
    start_containerd
  fi
  load_image "$PAUSE_IMAGE" "$PAUSE_ARCHIVE" "$(stat -c %s-%Y "$PAUSE_ARCHIVE")"
  issue_certs
  write_kubelet_config
  if ! alive "$kubelet_pid" "$kubelet_config" || ! kubelet_healthy; then
    [[ "$mode" == warm ]] && mode=recovered
    mapfile -t pids < <(pids_matching "$kubelet_config")
    kill_pids KILL "${pids[@]}"
    start_kubelet
  fi
  wait_until "$ready_timeout" node_ready || {
    tail -n 40 "$KUBELET_DIR/kubelet.log" >&2
    die "node $NODE_NAME not Ready after ${ready_timeout}s (logs: $KUBELET_DIR/kubelet.log, $CTD_DIR/containerd.log)"
  }
  echo "$mode"
}

down() {
  reset_runtime all
  rm -rf "$NODE_DIR"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
