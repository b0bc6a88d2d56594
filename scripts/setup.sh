#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh machine: system tools, the virtualenv, the Kafka jars.
# Used by `make demo` and `make test`; safe to run again (it skips what is already there).
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package: JDK 17+ and Maven run the Kafka broker; kcat, promtool and
# docker-compose are independent tools the tests use (a Kafka client, Prometheus, a compose parser)
# openssl makes the secured test broker's CA and certificates
declare -A PKG=([java]=openjdk-17-jre-headless [mvn]=maven [kcat]=kcat [promtool]=prometheus
                [prometheus]=prometheus [docker-compose]=docker-compose [openssl]=openssl)
missing=()
for cmd in "${!PKG[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # the Debian prometheus package must not start a system service here
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# kubectl renders deploy/k8s (tests/unit/test_k8s.py needs kustomize v5, i.e. kubectl >= 1.27):
# the "kubectl" package of the Kubernetes apt repository; Debian's own kubernetes-client is too old
if ! command -v kubectl >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq --no-install-recommends kubectl >/dev/null 2>&1 ||
    echo "setup: warning: kubectl not installed (add the Kubernetes apt repository: https://kubernetes.io/docs/tasks/tools/); the k8s manifest tests will skip, and fail under CI" >&2
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.streamer-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi
.venv/bin/streamer broker fetch >/dev/null
echo "setup: ok"
