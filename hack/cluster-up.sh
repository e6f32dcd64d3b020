#!/usr/bin/env bash
# Starts (or reuses) a local Kubernetes control plane for the operator's tests:
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok-controller, all as
# local processes ("kwokctl --runtime binary") from the binaries hack/build-k8s.sh builds.
# Nothing is downloaded. Fake kwok Nodes carry the pods; kwok's exec and logs simulation are
# switched on so that `kubectl exec` runs commands on this machine and `kubectl logs` reads
# local files (see "Exec and logs simulation" below and hack/README.md).
#
# Env: CLUSTER_NAME (default incident-operator), INCIDENT_OPERATOR_STATE (state dir, default
# ~/.cache/incident-operator/run), KWOK_NODE_COUNT (default 2), CLUSTER_READY_TIMEOUT (s, 180).
# Last stdout line: the kubeconfig path ($STATE_DIR/kubeconfig). Startup seconds go to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
take_lock cluster
# shellcheck source=versions.env
source "$here/versions.env"

t_start="$(date +%s.%N)"
node_count="${KWOK_NODE_COUNT:-2}"
ready_timeout="${CLUSTER_READY_TIMEOUT:-180}"
kubeconfig="$STATE_DIR/kubeconfig"
logs_dir="$STATE_DIR/logs"
exec_dir="$STATE_DIR/exec"
mkdir -p "$STATE_DIR" "$logs_dir" "$exec_dir"

cached_bin="${INCIDENT_OPERATOR_CACHE:-$HOME/.cache/incident-operator}/k8s-$K8S_VERSION/bin"
[[ -x "$cached_bin/kwokctl" && -x "$cached_bin/kube-apiserver" ]] ||
  note "building Kubernetes binaries first (hack/build-k8s.sh, ~15 min on 2 cores)"
build_err="$(mktemp)"
trap 'rm -f "$build_err"' EXIT
bin_dir="$("$here/build-k8s.sh" 2>"$build_err" | tail -n1)" || { cat "$build_err" >&2; die "hack/build-k8s.sh failed"; }
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl; do
  [[ -x "$bin_dir/$b" ]] || { cat "$build_err" >&2; die "missing $bin_dir/$b"; }
done

# kwokctl reads KWOK_* variables; pointing every binary at our own build keeps it from
# downloading anything. The kwok controller inherits this environment, and so do the commands
# that `kubectl exec` runs.
export PATH="$bin_dir:$PATH"
export KWOK_WORKDIR="$STATE_DIR/kwok"
export KWOK_RUNTIME=binary
export KWOK_KUBE_VERSION="$K8S_VERSION"
export KWOK_ETCD_VERSION="${ETCD_VERSION#v}"
export KWOK_KUBE_BINARY_PREFIX="$bin_dir"
export KWOK_KUBECTL_BINARY="$bin_dir/kubectl"
export KWOK_KUBE_APISERVER_BINARY="$bin_dir/kube-apiserver"
export KWOK_KUBE_CONTROLLER_MANAGER_BINARY="$bin_dir/kube-controller-manager"
export KWOK_KUBE_SCHEDULER_BINARY="$bin_dir/kube-scheduler"
export KWOK_ETCD_BINARY="$bin_dir/etcd"
export KWOK_CONTROLLER_BINARY="$bin_dir/kwok"
export INCIDENT_OPERATOR_STATE="$STATE_DIR"

kc() { kubectl --kubeconfig "$kubeconfig" --request-timeout=10s "$@"; }
api_ready() { [[ -s "$kubeconfig" ]] && [[ "$(kc get --raw /readyz 2>/dev/null)" == ok ]]; }
cluster_known() { kwokctl get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; }

# What flags and KWOK_* variables cannot say: every component listens on 127.0.0.1 only (kwok's
# default is 0.0.0.0), and kwok's Exec/ClusterExec/Logs/ClusterLogs CRDs are installed and
# watched by the kwok controller, so their objects can be changed with kubectl at run time.
kwok_config="$KWOK_WORKDIR/kwok.yaml"
mkdir -p "$KWOK_WORKDIR"
cat >"$kwok_config" <<EOF
kind: KwokctlConfiguration
apiVersion: config.kwok.x-k8s.io/v1alpha1
options:
  runtime: binary
  bindAddress: 127.0.0.1
  enableCRDs: [Exec, ClusterExec, Logs, ClusterLogs]
EOF

# --kubeconfig keeps kwokctl away from ~/.kube/config; write_kubeconfig writes a
# self-contained kubeconfig (certificates inlined) for this cluster instead.
create() {
  quietly kwokctl create cluster --name "$CLUSTER_NAME" --config "$kwok_config" \
    --kubeconfig= --timeout "${ready_timeout}s"
}
recreate() {
  note "creating cluster $CLUSTER_NAME afresh"
  quietly kwokctl delete cluster --name "$CLUSTER_NAME" --kubeconfig "$STATE_DIR/kubeconfig" || true
  create || die "kwokctl could not create cluster $CLUSTER_NAME (state in $KWOK_WORKDIR)"
}
write_kubeconfig() {
  local tmp
  tmp="$(mktemp "$STATE_DIR/.kubeconfig.XXXXXX")"
  chmod 600 "$tmp"
  kwokctl get kubeconfig --name "$CLUSTER_NAME" >"$tmp" 2>/dev/null || { rm -f "$tmp"; return 1; }
  mv -f "$tmp" "$kubeconfig"
}
# kwokctl skips a component whose pid file names a live process. After a kill the pid may be
# a zombie nobody has reaped yet, or already belong to another program: forget those files.
forget_dead_pids() {
  local file pid
  for file in "$KWOK_WORKDIR/clusters/$CLUSTER_NAME/pids/"*.pid; do
    [[ -f "$file" ]] || continue
    pid="$(tr -dc 0-9 <"$file")"
    if [[ -z "$pid" || ! -d "/proc/$pid" ]] || grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null \
       || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "/clusters/$CLUSTER_NAME/"; then
      rm -f "$file"
    fi
  done
}
mode=warm
if ! cluster_known; then
  mode=cold
  create || recreate
  write_kubeconfig || die "kwokctl get kubeconfig failed"
else
  [[ -s "$kubeconfig" ]] || write_kubeconfig || true
  if ! api_ready; then
    # Created earlier but stopped (killed, e.g. between a session and CI, or a reboot). A
    # restarted kwok controller leaves pods Pending for minutes until the node leases of its
    # killed predecessor expire, so start afresh: this cluster only ever holds test and demo
    # objects. Pid files of dead processes go first, so deleting kills nothing by mistake.
    mode=recreated
    forget_dead_pids
    recreate
    write_kubeconfig || die "kwokctl get kubeconfig failed"
  fi
fi

# wait_for DESCRIPTION CMD...: polls CMD until it succeeds or the deadline passes.
deadline=$(( $(date +%s) + ready_timeout ))
wait_for() {
  local what="$1"; shift
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      die "timed out after ${ready_timeout}s waiting for $what (cluster $CLUSTER_NAME, logs: kwokctl logs --name $CLUSTER_NAME kube-apiserver|kwok-controller|..., workdir $KWOK_WORKDIR/clusters/$CLUSTER_NAME)"
    fi
    sleep 0.5
  done
}
wait_for "kube-apiserver /readyz" api_ready

# Fake nodes. kwok manages Nodes annotated kwok.x-k8s.io/node=fake and runs every pod bound to
# them (Running + Ready right away). They carry NO taint, so pods need no toleration; they
# have the label type=kwok for nodeSelectors. The kwok node stage adds the Hostname address
# "localhost" and the kubelet port (= the kwok controller's server), which is how the
# apiserver reaches exec and logs.
nodes_yaml=""
for ((i = 0; i < node_count; i++)); do
  nodes_yaml+="---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: \"\"
spec:
  podCIDR: 10.244.$i.0/24
  podCIDRs: [10.244.$i.0/24]
status:
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  allocatable: {cpu: \"32\", memory: 256Gi, pods: \"110\"}
  capacity: {cpu: \"32\", memory: 256Gi, pods: \"110\"}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: $K8S_VERSION}
"
done

# Exec and logs simulation (kwok CRDs, enabled in $kwok_config, so they can be changed at run
# time with kubectl). Both cluster-wide defaults below have no selector, i.e. they
# apply to every pod in every namespace:
# - ClusterExec "incident-operator-local": `kubectl exec POD -- CMD...` runs CMD as a local
#   process of the kwok controller (this machine, same user, same PATH, cwd $STATE_DIR/exec,
#   extra env INCIDENT_OPERATOR_STATE). E.g. `kubectl exec p -- redis-cli -p $REDIS_PORT ping`
#   talks to the local Redis.
# - ClusterLogs "incident-operator-local": `kubectl logs POD` of any pod/container reads
#   $STATE_DIR/logs/default.log, a file in CRI log format
#   ("<RFC3339Nano time> stdout|stderr F <line>").
# kwok's selectors match pod names and namespaces only (no labels). To give one pod its own
# file or exec environment, create a namespaced kwok.x-k8s.io/v1alpha1 `Logs` (or `Exec`)
# object with the SAME name and namespace as the pod, e.g. logsFile
# $STATE_DIR/logs/<namespace>/<pod>.log; a per-pod object always wins over the ClusterLogs /
# ClusterExec. Do not add further ClusterLogs/ClusterExec that overlap these defaults: kwok
# picks among overlapping cluster-wide rules in no fixed order.
default_log="$logs_dir/default.log"
[[ -e "$default_log" ]] ||
  printf '%s stdout F incident-operator: no log file mapped for this pod (see hack/README.md)\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >"$default_log"
sim_yaml="---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: incident-operator-local
spec:
  execs:
  - local:
      workDir: $exec_dir
      envs:
      - {name: INCIDENT_OPERATOR_STATE, value: $STATE_DIR}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: incident-operator-local
spec:
  logs:
  - logsFile: $default_log
"

crds_established() {
  kc wait --for=condition=Established --timeout=5s \
    crd/clusterexecs.kwok.x-k8s.io crd/clusterlogs.kwok.x-k8s.io crd/execs.kwok.x-k8s.io crd/logs.kwok.x-k8s.io
}
wait_for "kwok CRDs" crds_established
apply_all() { printf '%s' "$nodes_yaml$sim_yaml" | kc apply -f -; }
wait_for "Nodes, ClusterExec and ClusterLogs to apply" apply_all

nodes_ready() {
  local n
  n="$(kc get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -cx True)"
  (( n >= node_count ))
}
wait_for "$node_count kwok nodes to be Ready" nodes_ready
# Pods are only admitted once the namespace's default ServiceAccount exists.
wait_for "the default ServiceAccount (kube-controller-manager)" kc get serviceaccount default -n default

# End to end: a Deployment's new pod is created, scheduled and Ready, so a test's first
# Deployment never finds a component still settling.
canary_yaml="apiVersion: v1
kind: Namespace
metadata: {name: incident-operator-canary}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: canary, namespace: incident-operator-canary}
spec:
  replicas: 1
  selector: {matchLabels: {app: canary}}
  template:
    metadata: {labels: {app: canary}}
    spec:
      containers: [{name: canary, image: canary:1}]
"
canary_applied() { printf '%s' "$canary_yaml" | kc apply -f - && kc -n incident-operator-canary rollout restart deployment/canary; }
wait_for "the canary Deployment to apply" canary_applied
canary_ready() { kc -n incident-operator-canary rollout status deployment/canary --timeout=5s; }
wait_for "a new pod of the canary Deployment to be Ready (scheduler, controller-manager, kwok)" canary_ready

elapsed="$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
note "cluster $CLUSTER_NAME ready in ${elapsed}s ($mode start)"
echo "$kubeconfig"
