#!/usr/bin/env bash
# A kind cluster with a local plain-HTTP registry: pushed from the host as
# localhost:5001, pulled from pods (istio-agent) as kind-registry:5000.
set -euo pipefail
CLUSTER=${KIND_CLUSTER:-canary}
REG_NAME=kind-registry
REG_PORT=5001

missing=()
for t in docker kind kubectl; do command -v "$t" >/dev/null || missing+=("$t"); done
if ((${#missing[@]})); then
  echo "make kind-up needs: ${missing[*]} (install them; this project's machines have none)" >&2
  exit 1
fi
docker info >/dev/null 2>&1 || { echo "make kind-up needs a running Docker engine" >&2; exit 1; }

if [ "$(docker inspect -f '{{.State.Running}}' "$REG_NAME" 2>/dev/null || true)" != "true" ]; then
  docker run -d --restart=always -p "127.0.0.1:${REG_PORT}:5000" --network bridge --name "$REG_NAME" registry:2
fi
if ! kind get clusters | grep -qx "$CLUSTER"; then
  cat <<YAML | kind create cluster --name "$CLUSTER" --config=-
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
YAML
fi
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:${REG_PORT}"
  printf '[host."http://%s:5000"]\n' "$REG_NAME" | docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:${REG_PORT}/hosts.toml"
done
docker network connect kind "$REG_NAME" 2>/dev/null || true
kubectl apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${REG_PORT}"
YAML
echo "kind cluster '$CLUSTER' is up; registry: push localhost:${REG_PORT}, pods pull ${REG_NAME}:5000"
