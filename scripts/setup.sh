# Shared set-up of the run and test commands (sourced, not run): the virtualenv, the
# Python and npm packages, and the services. Idempotent; fast when nothing changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$python" -m venv .venv
fi
if ! cmp -s requirements.txt .venv/.requirements.txt || ! cmp -s requirements-dev.txt .venv/.requirements-dev.txt; then
  echo "== installing Python packages"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  cp requirements.txt .venv/.requirements.txt
  cp requirements-dev.txt .venv/.requirements-dev.txt
fi
if [ ! -d node_modules/bootstrap ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing front-end packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Debian's packages the tests use: Chromium for the browser tests (Playwright drives it, it never
# downloads a browser), MediaWiki on PHP for the wiki choice lists (the php8.2-* names keep
# apache out; the list is tests/shotsheet/mediawiki.py's APT_PACKAGES) and Prometheus (promtool,
# and the metrics tests' own Prometheus; scripts/run starts one through scripts/services.py).
need_chromium=$(command -v chromium >/dev/null 2>&1 || echo yes)
need_wiki=$([ -f /usr/share/mediawiki/maintenance/install.php ] && command -v php >/dev/null 2>&1 || echo yes)
need_prometheus=$(command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || echo yes)
if [ -n "$need_chromium$need_wiki$need_prometheus" ]; then
  echo "== installing Debian packages for the tests:${need_chromium:+ chromium}${need_wiki:+ mediawiki}${need_prometheus:+ prometheus}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  apt_get() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get -y -qq "$@" >/dev/null; }
  apt_get update
  [ -z "$need_chromium" ] || apt_get install chromium
  [ -z "$need_wiki" ] || apt_get install --no-install-recommends mediawiki php8.2-cli php8.2-cgi php8.2-sqlite3 micro-httpd
  [ -z "$need_prometheus" ] || apt_get install --no-install-recommends prometheus
fi

# Services this command starts (not those already running or external) are stopped on exit.
# scripts/run adds prometheus (labbook_services="mongo kafka redis prometheus" before sourcing this).
labbook_started_services=()
for service in ${labbook_services:-mongo kafka redis}; do
  .venv/bin/python scripts/services.py status "$service" >/dev/null 2>&1 || labbook_started_services+=("$service")
done
echo "== services"
# shellcheck disable=SC2086  # a list of names
.venv/bin/python scripts/services.py up ${labbook_services:-mongo kafka redis}

labbook_stop_services() {
  if [ "${LABBOOK_KEEP_SERVICES:-0}" != 1 ] && [ ${#labbook_started_services[@]} -gt 0 ]; then
    echo "== stopping the services this command started: ${labbook_started_services[*]}"
    .venv/bin/python scripts/services.py down "${labbook_started_services[@]}" || true
  fi
}
