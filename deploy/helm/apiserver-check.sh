#!/usr/bin/env bash
# Installs the chart, with each values file, into a real Kubernetes API server:
# kube-apiserver + etcd built from the Go module proxy (deploy/local/tools/
# kube-apiserver, tools/etcd; `deploy/local/stack install kube-apiserver etcd`),
# started here on 127.0.0.1 with a self-signed certificate and a static token,
# with the CRDs the chart uses registered from their own Go modules (Istio:
# istio.io/api; Prometheus Operator: github.com/prometheus-operator/prometheus-operator,
# versions in deploy/local/versions.env; fetched at run time, never committed).
# Every object must be accepted: schema errors are refused by the server, and
# any "unknown field" / "duplicate field" warning (field validation) fails the run.
# No kubelet, scheduler or controller manager: no pod ever runs; that is expected.
#
#   deploy/helm/apiserver-check.sh            # all three values files, then the defaults
#                                             # with the load-test Job on (`loadtest` line)
#   GH_KUBE_API_PORT=16443 GH_KUBE_ETCD_PORT=23790 (defaults) choose the ports.
#
# Prints one line per values file: objects accepted (tests/tests/apiserver.rs, in
# `make test`, compares them with `helm template`). Everything it starts is
# stopped at exit; its scratch directory is removed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STACK="$REPO/deploy/local/stack"
CHART="$HERE/glasshouse"
set -a; source "$REPO/deploy/local/versions.env"; set +a
API_PORT=${GH_KUBE_API_PORT:-16443}
ETCD_PORT=${GH_KUBE_ETCD_PORT:-23790}
ETCD_PEER_PORT=$(( ETCD_PORT + 10 ))
DEADLINE_S=${GH_KUBE_READY_TIMEOUT:-120}

say() { printf 'apiserver-check: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

"$STACK" install helm etcd kube-apiserver >&2
HELM=$("$STACK" which helm); ETCD=$("$STACK" which etcd); KAS=$("$STACK" which kube-apiserver)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gh-apiserver.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? p
  # SIGTERM, then SIGKILL after 10 s (kube-apiserver drains slowly and nothing here needs it).
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  local end=$(( SECONDS + 10 ))
  for p in "${PIDS[@]}"; do
    while kill -0 "$p" 2>/dev/null && (( SECONDS < end )); do sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    for f in "$WORK"/etcd.log "$WORK"/kube-apiserver.log; do [[ -f $f ]] && { say "tail of $f:"; tail -n 20 "$f" >&2; }; done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$API_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"; do port_open "$p" && die "port $p is taken (set GH_KUBE_API_PORT / GH_KUBE_ETCD_PORT)"; done

# until_ok WHAT PID CMD...: polls CMD against a deadline (no fixed sleeps); fails at
# once if the process PID has exited.
until_ok() {
  local what=$1 pid=$2; shift 2
  local end=$(( SECONDS + DEADLINE_S ))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "$what exited during start-up"
    (( SECONDS < end )) || die "$what not ready after ${DEADLINE_S}s"
    sleep 0.3
  done
}

# --- certificates and the static token
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
openssl genrsa -out "$WORK/sa.key" 2048 2>/dev/null
openssl rsa -in "$WORK/sa.key" -pubout -out "$WORK/sa.pub" 2>/dev/null
TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
echo "$TOKEN,glasshouse-check,glasshouse-check,system:masters" >"$WORK/tokens.csv"

# --- etcd and kube-apiserver (no endpoint reconciler: it refuses a loopback address)
t0=$SECONDS
"$ETCD" --name check --data-dir "$WORK/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "check=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
until_ok etcd "${PIDS[-1]}" curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

"$KAS" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file "$WORK/tls.crt" --tls-private-key-file "$WORK/tls.key" --cert-dir "$WORK/certs" \
  --token-auth-file "$WORK/tokens.csv" --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$WORK/sa.pub" --service-account-signing-key-file "$WORK/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none >"$WORK/kube-apiserver.log" 2>&1 &
PIDS+=($!)
API="https://127.0.0.1:$API_PORT"
api() { curl -fsS --cacert "$WORK/tls.crt" -H "Authorization: Bearer $TOKEN" "$@"; }
until_ok kube-apiserver "${PIDS[-1]}" api "$API/readyz"
KUBE_VERSION=$("$KAS" --version 2>/dev/null | awk '{print $2}')
say "etcd + kube-apiserver $KUBE_VERSION ready in $(( SECONDS - t0 ))s"

cat >"$WORK/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: check, cluster: {server: "$API", certificate-authority: "$WORK/tls.crt"}}]
users: [{name: check, user: {token: "$TOKEN"}}]
contexts: [{name: check, context: {cluster: check, user: check}}]
current-context: check
YAML
export KUBECONFIG="$WORK/kubeconfig" HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"

# --- namespaces the chart writes to besides the release's
for ns in istio-system monitoring; do
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$ns" |
    api -X POST -H 'Content-Type: application/yaml' --data-binary @- "$API/api/v1/namespaces" >/dev/null
done

# --- CRDs, from their Go modules, as a throwaway chart's crds/ (helm waits for them)
mod_dir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }
ISTIO_API=$(cd "$WORK" && mod_dir "istio.io/api@$GH_ISTIO_API_VERSION")
PROM_OP=$(cd "$WORK" && mod_dir "github.com/prometheus-operator/prometheus-operator@$GH_PROMETHEUS_OPERATOR_VERSION")
[[ -f $ISTIO_API/kubernetes/customresourcedefinitions.gen.yaml ]] || die "no Istio CRDs in istio.io/api@$GH_ISTIO_API_VERSION"
mkdir -p "$WORK/crds/crds"
printf 'apiVersion: v2\nname: glasshouse-check-crds\nversion: 0.0.0\n' >"$WORK/crds/Chart.yaml"
cp "$ISTIO_API/kubernetes/customresourcedefinitions.gen.yaml" "$WORK/crds/crds/istio.yaml"
for c in servicemonitors podmonitors prometheusrules alertmanagers prometheuses; do
  cp "$PROM_OP/example/prometheus-operator-crd/monitoring.coreos.com_$c.yaml" "$WORK/crds/crds/"
done
# Kiali's operator is not a Go module, so its CRD is not available here: a stand-in
# with the Kiali CRD's names and an open schema (the real one does not constrain
# spec either), so the Kiali CR is at least accepted by kind and group/version.
cat >"$WORK/crds/crds/kiali.yaml" <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: kialis.kiali.io}
spec:
  group: kiali.io
  names: {kind: Kiali, listKind: KialiList, plural: kialis, singular: kiali}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
YAML
# The AWS Load Balancer Controller's CRDs (TargetGroupBinding, IngressClassParams)
# are not registered: the chart uses neither (its ALB is a core networking.k8s.io/v1
# Ingress with annotations), and the Go module proxy has only v1.1.9 (2020, before
# the CRDs) of sigs.k8s.io/aws-load-balancer-controller: its v2 tags lack a /v2
# module path, so no v2 version can be fetched as a module.
"$HELM" install check-crds "$WORK/crds" --namespace default >"$WORK/crds.out" 2>&1 || { cat "$WORK/crds.out" >&2; die "registering the CRDs"; }
say "CRDs registered: Istio (istio.io/api $GH_ISTIO_API_VERSION), Prometheus Operator ($GH_PROMETHEUS_OPERATOR_VERSION), Kiali (stand-in)"

# --- the chart, once per values file, each in its own namespace
failed=0
for v in default local eks loadtest; do
  case $v in
    default) args=() ;;
    # The load-test Job (off by default) with everything it renders; the token
    # Secret it names need not exist for the API server to accept the Job.
    loadtest) args=(--set loadtest.enabled=true --set loadtest.tokenSecret.name=glasshouse-loadtest-tokens) ;;
    *) args=(-f "$CHART/values-$v.yaml") ;;
  esac
  ns="glasshouse-$v"; rel="glasshouse-$v"
  # Helm hooks (e.g. pre-install Jobs) would make `helm install` wait for Jobs that
  # never run here (no kubelet): the release goes in with --no-hooks, then its hook
  # objects, hook annotations removed, as a second release, so the server checks them
  # too. Accepted = the release's objects + the hooks'.
  if "$HELM" install "$rel" "$CHART" --namespace "$ns" --create-namespace --no-hooks "${args[@]}" >"$WORK/$v.out" 2>"$WORK/$v.err"; then
    n=$("$HELM" get manifest "$rel" --namespace "$ns" | grep -c '^kind:')
    mkdir -p "$WORK/hooks-$v/templates"
    printf 'apiVersion: v2\nname: glasshouse-check-hooks\nversion: 0.0.0\n' >"$WORK/hooks-$v/Chart.yaml"
    "$HELM" template "$rel" "$CHART" --namespace "$ns" --kube-version "$KUBE_VERSION" "${args[@]}" 2>/dev/null |
      awk 'BEGIN { RS = "\n---\n" } /\n    helm\.sh\/hook: / { print "---"; print }' |
      sed '/^    helm\.sh\/hook/d' >"$WORK/hooks-$v/hooks.yaml"
    h=$(grep -c '^kind:' "$WORK/hooks-$v/hooks.yaml" || true)
    if (( h > 0 )); then
      # Files.Get: the rendered text is not a template again.
      echo '{{ .Files.Get "hooks.yaml" }}' >"$WORK/hooks-$v/templates/hooks.yaml"
      if ! "$HELM" install "$rel-hooks" "$WORK/hooks-$v" --namespace "$ns" >>"$WORK/$v.out" 2>>"$WORK/$v.err"; then
        grep -v 'found symbolic link' "$WORK/$v.err" >&2 || true
        say "$v: the chart's hook objects were refused"; failed=1; continue
      fi
    fi
    if grep -Ei 'unknown field|duplicate field|strict decoding' "$WORK/$v.err" >&2; then
      say "$v: accepted, but with field warnings (above)"; failed=1; continue
    fi
    printf '%-8s %3d objects accepted by kube-apiserver (%d of them hooks)\n' "$v" $(( n + h )) "$h"
  else
    grep -v 'found symbolic link' "$WORK/$v.err" >&2 || true
    say "$v: helm install refused"; failed=1
  fi
done
exit $failed
