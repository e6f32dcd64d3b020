#!/usr/bin/env bash
# End-to-end check of the local environment: brings up services and cluster (reusing running
# ones), then checks a 2-replica Deployment gets Ready pods on kwok nodes, `kubectl exec` reaches
# the local Redis, `kubectl logs` reads a pod's mapped file, and rollout undo/restart work.
# Leaves everything running; cleans up only its own namespace. Prints "smoke: ok" on success.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

env_file="$("$here/services-up.sh" | tail -n1)"
kubeconfig="$("$here/cluster-up.sh" | tail -n1)"
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a
# shellcheck source=versions.env
source "$here/versions.env"
export PATH="${INCIDENT_OPERATOR_CACHE:-$HOME/.cache/incident-operator}/k8s-$K8S_VERSION/bin:$PATH"
kc() { kubectl --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }
ns="smoke-$$"
trap 'kc delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT

[[ "$(kc get --raw /readyz)" == ok ]] || die "apiserver not ready"
kc create namespace "$ns" >/dev/null
kc -n "$ns" create deployment web --image=example.invalid/web:1.0 --replicas=2 >/dev/null
kc -n "$ns" rollout status deployment/web --timeout=60s >/dev/null || die "deployment not rolled out"
mapfile -t pods < <(kc -n "$ns" get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
(( ${#pods[@]} == 2 )) || die "expected 2 pods, got ${#pods[@]}"
pod="${pods[0]}"

# exec runs locally: the SET must land in the local Redis.
value="smoke-$RANDOM"
kc -n "$ns" exec "$pod" -- redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SET smoke-probe "$value" >/dev/null
[[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" GET smoke-probe)" == "$value" ]] || die "exec did not reach local redis"
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" DEL smoke-probe >/dev/null

# logs: a per-pod Logs object (owned by the pod, so it goes away with it) maps a CRI log file.
log_file="$STATE_DIR/logs/$ns/$pod.log"
mkdir -p "$(dirname "$log_file")"
printf '%s stdout F smoke line %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$value" >"$log_file"
uid="$(kc -n "$ns" get pod "$pod" -o jsonpath='{.metadata.uid}')"
kc apply -f - >/dev/null <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Logs
metadata:
  name: $pod
  namespace: $ns
  ownerReferences: [{apiVersion: v1, kind: Pod, name: $pod, uid: $uid}]
spec:
  logs:
  - logsFile: $log_file
EOF
got=""
for _ in $(seq 20); do
  got="$(kc -n "$ns" logs "$pod" 2>/dev/null || true)"
  [[ "$got" == "smoke line $value" ]] && break
  sleep 0.25
done
[[ "$got" == "smoke line $value" ]] || die "kubectl logs returned '$got'"

# kube-controller-manager: rollout restart and undo.
kc -n "$ns" rollout restart deployment/web >/dev/null
kc -n "$ns" rollout status deployment/web --timeout=60s >/dev/null || die "rollout restart failed"
kc -n "$ns" set image deployment/web web=example.invalid/web:2.0 >/dev/null
kc -n "$ns" rollout status deployment/web --timeout=60s >/dev/null || die "image update failed"
kc -n "$ns" rollout undo deployment/web >/dev/null
kc -n "$ns" rollout status deployment/web --timeout=60s >/dev/null || die "rollout undo failed"
image="$(kc -n "$ns" get deployment web -o jsonpath='{.spec.template.spec.containers[0].image}')"
[[ "$image" == example.invalid/web:1.0 ]] || die "rollout undo left image $image"
rm -rf "$STATE_DIR/logs/$ns"
echo "smoke: ok"
