#!/usr/bin/env bash
# End-to-end check of the local cluster's REAL node: brings up the cluster (reusing a running
# one), then, in a throwaway namespace:
# - a Deployment (hostNetwork, Redis image built here, a free 127.0.0.1 port) runs a real
#   redis-server that answers PING from this machine;
# - `kubectl exec` runs inside the container (PID 1 is redis-server, the user is the image's);
# - `kubectl logs` returns the container's own log;
# - `kubectl rollout restart` gives a new container: new start time, new host PID;
# - a Job's command runs and its exit code, 3, shows in the pod status.
# Leaves the cluster running; deletes only its namespace. Prints "smoke: ok" on success.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib-node.sh
source "$here/lib-node.sh"

kubeconfig="$("$here/cluster-up.sh" | tail -n1)"
"$here/build-images.sh" redis >/dev/null
kc() { "$K8S_BIN/kubectl" --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }
ns="smoke-$$"
trap 'kc delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT
command -v redis-cli >/dev/null || die "redis-cli is missing (hack/bootstrap.sh installs it)"

[[ "$(kc get --raw /readyz)" == ok ]] || die "apiserver not ready"
kc create namespace "$ns" >/dev/null
port="$(free_port)"
kc -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis}
spec:
  replicas: 1
  # hostNetwork: old and new pod cannot listen on the same port at once.
  strategy: {type: Recreate}
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      nodeSelector: {type: real}
      hostNetwork: true
      terminationGracePeriodSeconds: 5
      automountServiceAccountToken: false
      containers:
      - name: redis
        image: localhost/incident-demo-redis:dev
        imagePullPolicy: Never
        args: [--bind, 127.0.0.1, --port, "$port", --save, "", --appendonly, "no"]
        readinessProbe:
          exec: {command: [redis-cli, -p, "$port", ping]}
          periodSeconds: 1
EOF
kc -n "$ns" rollout status deployment/redis --timeout=90s >/dev/null || die "redis Deployment not ready"
[[ "$(redis-cli -h 127.0.0.1 -p "$port" ping)" == PONG ]] || die "no redis-server answers on 127.0.0.1:$port"

# pod_of: the name of the Deployment's one Running pod that is not being deleted.
pod_of() {
  kc -n "$ns" get pods -l app=redis -o go-template='{{range .items}}{{if and (not .metadata.deletionTimestamp) (eq .status.phase "Running")}}{{.metadata.name}}{{"\n"}}{{end}}{{end}}' | head -n1
}
pod="$(pod_of)"
[[ "$(kc -n "$ns" get pod "$pod" -o jsonpath='{.spec.nodeName}')" == "$NODE_NAME" ]] || die "pod $pod is not on node $NODE_NAME"

# exec: inside the container, PID 1 is redis-server and the user is the image's (999), whereas
# on this machine PID 1 is the init and we are root.
# shellcheck disable=SC2016 # expanded inside the container
inside="$(kc -n "$ns" exec "$pod" -- sh -c 'tr "\0" " " </proc/1/cmdline; echo; id -u; . /etc/os-release; echo "$VERSION_CODENAME"')"
[[ "$(sed -n 1p <<<"$inside")" == redis-server* ]] || die "exec: PID 1 is not redis-server: $inside"
[[ "$(sed -n 2p <<<"$inside")" == 999 ]] || die "exec: not the image's user: $inside"
[[ "$(sed -n 3p <<<"$inside")" == bookworm ]] || die "exec: unexpected /etc/os-release: $inside"
kc -n "$ns" exec "$pod" -- redis-cli -p "$port" set smoke-key "$ns" >/dev/null
[[ "$(redis-cli -h 127.0.0.1 -p "$port" get smoke-key)" == "$ns" ]] || die "exec: redis-cli inside did not reach the server"

# logs: redis-server's own log lines.
kc -n "$ns" logs "$pod" | grep -q 'Ready to accept connections' || die "logs: no redis-server log: $(kc -n "$ns" logs "$pod" | tail -n 3)"

# rollout restart: a new pod with a new container, a new start time and a new host PID.
started() { kc -n "$ns" get pod "$1" -o jsonpath='{.status.containerStatuses[0].state.running.startedAt}'; }
host_pid() { ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2; }
before_start="$(started "$pod")"
before_pid="$(host_pid)"
[[ -n "$before_pid" && -n "$before_start" ]] || die "no start time or PID for $pod"
sleep 1 # start times have a resolution of one second
kc -n "$ns" rollout restart deployment/redis >/dev/null
kc -n "$ns" rollout status deployment/redis --timeout=90s >/dev/null || die "rollout restart failed"
new_pod=""
for _ in $(seq 50); do
  new_pod="$(pod_of)"
  [[ -n "$new_pod" && "$new_pod" != "$pod" && "$(kc -n "$ns" get pods -l app=redis --no-headers | wc -l)" == 1 ]] && break
  sleep 0.2
done
[[ "$new_pod" != "$pod" ]] || die "rollout restart kept pod $pod"
after_start="$(started "$new_pod")"
after_pid=""
for _ in $(seq 50); do after_pid="$(host_pid)"; [[ -n "$after_pid" ]] && break; sleep 0.2; done
[[ "$after_start" != "$before_start" ]] || die "container start time unchanged ($after_start)"
[[ -n "$after_pid" && "$after_pid" != "$before_pid" ]] || die "redis-server PID unchanged ($before_pid -> $after_pid)"

# A Job: its command runs, and the exit code shows in the pod status.
kc -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: exit3}
spec:
  backoffLimit: 0
  template:
    spec:
      nodeSelector: {type: real}
      hostNetwork: true
      restartPolicy: Never
      automountServiceAccountToken: false
      containers:
      - name: job
        image: $BASE_REF
        imagePullPolicy: Never
        command: [sh, -c, 'echo "job ran as $(id -u) in $(. /etc/os-release; echo "$VERSION_CODENAME")"; exit 3']
EOF
kc -n "$ns" wait --for=condition=Failed job/exit3 --timeout=90s >/dev/null || die "Job exit3 did not fail as it should"
job_pod="$(kc -n "$ns" get pods -l job-name=exit3 -o jsonpath='{.items[0].metadata.name}')"
code="$(kc -n "$ns" get pod "$job_pod" -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')"
[[ "$code" == 3 ]] || die "Job pod exit code '$code', expected 3"
[[ "$(kc -n "$ns" logs "$job_pod")" == "job ran as 0 in bookworm" ]] || die "Job log: $(kc -n "$ns" logs "$job_pod")"

echo "smoke: ok"
