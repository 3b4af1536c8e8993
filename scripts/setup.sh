#!/usr/bin/env bash
# Create ./.venv with reconciler installed. With --test, also install what the test
# suite needs: Debian packages (the CNCF distribution registry, skopeo, htpasswd/ab, wrk, curl,
# the PostgreSQL server, HAProxy, chromium + chromedriver, git) and the Python test dependencies (moto's S3 test server, psycopg for
# the PostgreSQL store). The s3 extra (boto3) is always installed. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=""
[[ "${1:-}" == "--test" ]] && want_test=1

need_apt=()
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [[ -n $want_test ]]; then
  command -v docker-registry >/dev/null || need_apt+=(docker-registry)
  command -v skopeo >/dev/null || need_apt+=(skopeo)
  command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
  command -v openssl >/dev/null || need_apt+=(openssl)
  # the benchmark harness (bench/, also smoke-tested by the suite): load generator and reference client
  command -v wrk >/dev/null || need_apt+=(wrk)
  command -v curl >/dev/null || need_apt+=(curl)
  [[ -x /usr/bin/time ]] || need_apt+=(time)
  # the PostgreSQL store's tests start their own server from these binaries
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
  # the load balancer of docs/deployment.md's reference setup (tests/integration/test_reference_setup.py)
  [[ -x /usr/sbin/haproxy ]] || command -v haproxy >/dev/null || need_apt+=(haproxy)
  # the web catalog's tests: headless Chromium driven through chromedriver (Selenium)
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
  # reconciler watch --git runs the git command; its tests make real repositories
  command -v git >/dev/null || need_apt+=(git)
fi
if ((${#need_apt[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [[ -n $want_test ]]; then
  .venv/bin/python -m pip install -q -e '.[s3,test,dev,postgresql]'
else
  .venv/bin/python -m pip install -q -e '.[s3]'
fi
