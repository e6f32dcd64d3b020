#!/usr/bin/env bash
# Starts (or reuses) a local Kubernetes cluster for the operator's tests and demo:
# - control plane: etcd + kube-apiserver + kube-controller-manager + kube-scheduler +
#   kwok-controller, all as local processes ("kwokctl --runtime binary") from the binaries
#   hack/build-k8s.sh builds;
# - one REAL node, "localhost" (label type=real): kubelet + containerd v2 + runc
#   (hack/node.sh), running images built here without a registry (hack/build-images.sh);
# - fake kwok nodes (label type=kwok, taint kwok.x-k8s.io/node=fake:NoSchedule) for scale
#   tests: only pods that tolerate the taint land there; they run nothing (no exec, no logs).
# Nothing is downloaded at run time (Go modules, Debian packages and PyPI only while building).
# Everything listens on 127.0.0.1. After a kill of any of its processes it recovers (see
# hack/README.md). It ends by proving that a new hostNetwork pod of an image built here gets
# Ready on the real node.
#
# Env: CLUSTER_NAME (default incident-operator), INCIDENT_OPERATOR_STATE (state dir, default
# ~/.cache/incident-operator/run), KWOK_NODE_COUNT (default 2), CLUSTER_READY_TIMEOUT (s, 180),
# KUBE_APISERVER_PORT (default 6443, on 127.0.0.1), KUBELET_PORT (default 10250),
# CLUSTER_IMAGES (which images of hack/build-images.sh to build and load: default all of them;
# "base" for the canary's base image only).
# Last stdout line: the kubeconfig path ($STATE_DIR/kubeconfig). Startup seconds go to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
take_lock cluster
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib-node.sh
source "$here/lib-node.sh"

t_start="$(date +%s.%N)"
node_count="${KWOK_NODE_COUNT:-2}"
ready_timeout="${CLUSTER_READY_TIMEOUT:-180}"
apiserver_port="${KUBE_APISERVER_PORT:-6443}"
kubeconfig="$STATE_DIR/kubeconfig"
mkdir -p "$STATE_DIR"

[[ -x "$K8S_BIN/kwokctl" && -x "$K8S_BIN/kube-apiserver" && -x "$K8S_BIN/kubelet" ]] ||
  note "building Kubernetes binaries first (hack/build-k8s.sh, ~15 min on 2 cores)"
[[ -x "$CTD_BIN/containerd" ]] ||
  note "building containerd $CONTAINERD_VERSION and the pause image first (hack/build-runtime.sh, ~2-4 min)"
build_err="$(mktemp)"
trap 'rm -f "$build_err"' EXIT
# build SCRIPT [ARGS]: runs a cached build script and prints its last stdout line. Its
# progress lines ("[build-...]", printed on a cold build only) show as they come; the rest of
# its stderr only when it fails.
build() {
  local script="$1" out rc=0
  shift
  out="$(without_lock "$here/$script" "$@" \
    2> >(tee "$build_err" | grep --line-buffered '^\[build-' | grep -v cached >&2) | tail -n1)" || rc=$?
  (( rc == 0 )) || { sleep 0.2; cat "$build_err" >&2; die "hack/$script failed"; }
  echo "$out"
}
bin_dir="$(build build-k8s.sh)"
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet etcd kwok kwokctl; do
  [[ -x "$bin_dir/$b" ]] || { cat "$build_err" >&2; die "missing $bin_dir/$b"; }
done
build build-runtime.sh >/dev/null

# kwokctl reads KWOK_* variables; pointing every binary at our own build keeps it from
# downloading anything. The kwok controller inherits this environment.
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

# What flags and KWOK_* variables cannot say:
# - every component listens on 127.0.0.1 only (kwok's default is 0.0.0.0);
# - the API server has a fixed port: in-cluster clients in hostNetwork pods use
#   KUBERNETES_SERVICE_HOST=127.0.0.1 and KUBERNETES_SERVICE_PORT=$apiserver_port;
# - for the real node (componentsPatches): kube-apiserver reaches kubelets by their Hostname
#   address ("localhost": the real node's --hostname-override, and the kwok controller's server
#   for fake nodes), never by the InternalIP the kubelet reports (the VM's eth0). It presents
#   the admin client certificate (O system:masters) to the kubelet's webhook authentication
#   and verifies the kubelet's serving certificate against the cluster CA (hack/node.sh issues
#   it). NodeRestriction confines the kubelet's credentials to its own Node and pods (kwokctl
#   already sets --authorization-mode=Node,RBAC). The kwok controller manages only Nodes
#   annotated kwok.x-k8s.io/node=fake, so it leaves the real node alone.
# kube-controller-manager's built-in hostPath provisioner backs PersistentVolumeClaims (default
# StorageClass "standard", applied below): a PVC gets a new directory /tmp/hostpath_pv/<uuid>
# on this machine, removed when the claim is deleted.
# kwokctl itself gives kube-controller-manager --root-ca-file (so kube-root-ca.crt holds the
# cluster CA) and --service-account-private-key-file, and the API server the matching
# ServiceAccount token signing key: ServiceAccount tokens work for in-cluster clients.
pki_dir="$KWOK_WORKDIR/clusters/$CLUSTER_NAME/pki"
kwok_config="$KWOK_WORKDIR/kwok.yaml"
mkdir -p "$KWOK_WORKDIR"
cat >"$kwok_config" <<EOF
kind: KwokctlConfiguration
apiVersion: config.kwok.x-k8s.io/v1alpha1
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeApiserverPort: $apiserver_port
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - {key: kubelet-preferred-address-types, value: Hostname}
  - {key: kubelet-client-certificate, value: "$pki_dir/admin.crt"}
  - {key: kubelet-client-key, value: "$pki_dir/admin.key"}
  - {key: kubelet-certificate-authority, value: "$pki_dir/ca.crt"}
  - {key: enable-admission-plugins, value: NodeRestriction}
- name: kube-controller-manager
  extraArgs:
  - {key: enable-hostpath-provisioner, value: "true"}
- name: kwok-controller
  extraArgs:
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
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
    # The real node notices the new cluster CA and starts clean too (hack/node.sh).
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
      die "timed out after ${ready_timeout}s waiting for $what (cluster $CLUSTER_NAME, logs: kwokctl logs --name $CLUSTER_NAME kube-apiserver|kwok-controller|..., workdir $KWOK_WORKDIR/clusters/$CLUSTER_NAME, node: $NODE_DIR)"
    fi
    sleep 0.5
  done
}
wait_for "kube-apiserver /readyz" api_ready

# The real node: containerd + kubelet (reused, started, or recovered after a kill).
node_mode="$(without_lock "$here/node.sh" up | tail -n1)" || die "hack/node.sh up failed"
# Images: built when their inputs changed (cached otherwise) and loaded into containerd.
# shellcheck disable=SC2086 # a list of names
build build-images.sh ${CLUSTER_IMAGES:-} >/dev/null

# Fake nodes. kwok manages Nodes annotated kwok.x-k8s.io/node=fake and runs every pod bound to
# them (Running + Ready right away, nothing executed). Their taint
# kwok.x-k8s.io/node=fake:NoSchedule keeps ordinary pods on the real node; a pod meant for
# them tolerates the taint and selects nodeSelector {type: kwok}. Fake pods run nothing, so
# they have no exec and no logs; pods that need them run on the real node.
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
  taints:
  - {key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}
status:
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  allocatable: {cpu: \"32\", memory: 256Gi, pods: \"110\"}
  capacity: {cpu: \"32\", memory: 256Gi, pods: \"110\"}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: $K8S_VERSION}
"
done

# kwok's exec and logs simulation of earlier versions ran `kubectl exec` on fake pods as
# processes of this machine: gone with the real node. A cluster created before keeps its
# objects until recreated; delete them (the CRDs may be missing: nothing to do then).
kc delete clusterexecs.kwok.x-k8s.io,clusterlogs.kwok.x-k8s.io incident-operator-local \
  --ignore-not-found >/dev/null 2>&1 || true
storage_yaml="---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
"
apply_all() { printf '%s' "$nodes_yaml$storage_yaml" | kc apply -f -; }
wait_for "Nodes and the StorageClass to apply" apply_all

nodes_ready() {
  local n
  n="$(kc get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -cx True)"
  (( n >= node_count ))
}
wait_for "$node_count kwok nodes to be Ready" nodes_ready
# Pods are only admitted once the namespace's default ServiceAccount exists.
wait_for "the default ServiceAccount (kube-controller-manager)" kc get serviceaccount default -n default

# End to end on the real node: a new pod of the canary Deployment (hostNetwork, the base image
# built here, imagePullPolicy Never) is created, scheduled, started by containerd and Ready,
# so a test's first Deployment never finds a component still settling.
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
      nodeSelector: {type: real}
      hostNetwork: true
      terminationGracePeriodSeconds: 1
      automountServiceAccountToken: false
      containers:
      - name: canary
        image: $BASE_REF
        imagePullPolicy: Never
        command: [sleep, infinity]
        resources: {requests: {cpu: 1m, memory: 8Mi}}
"
canary_applied() { printf '%s' "$canary_yaml" | kc apply -f - && kc -n incident-operator-canary rollout restart deployment/canary; }
wait_for "the canary Deployment to apply" canary_applied
canary_ready() { kc -n incident-operator-canary rollout status deployment/canary --timeout=5s; }
wait_for "a new pod of the canary Deployment to be Ready on node $NODE_NAME (scheduler, controller-manager, kubelet, containerd)" canary_ready

elapsed="$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
note "cluster $CLUSTER_NAME ready in ${elapsed}s ($mode start; real node $NODE_NAME: $node_mode)"
echo "$kubeconfig"
