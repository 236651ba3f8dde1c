#!/usr/bin/env bash
# Make sure the services the tests use answer: Redis on 127.0.0.1:6379 and PostgreSQL on
# 127.0.0.1:5432 (user postgres, database test). Starts them when they are installed but stopped;
# installs redis-server when it is missing (tests start their own on free ports), chromium (the
# browser tests) and nginx (the cluster tests run their own nginx processes; the package's service
# is not started); otherwise fails with a clear message. Never skips silently.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if [ "$(id -u)" = 0 ] && have apt-get; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "error: $* is needed by the tests: install it (apt-get install $*)" >&2; exit 1
  fi
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
have redis-server || apt_install redis-server redis-tools
if ! redis_up; then
  echo "starting Redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "error: Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }
fi

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
have pg_isready || apt_install postgresql postgresql-client
if ! pg_up; then
  echo "starting PostgreSQL on 127.0.0.1:5432"
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$version" ] || { echo "error: PostgreSQL is installed but has no cluster in /etc/postgresql" >&2; exit 1; }
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 100); do pg_up && break; sleep 0.1; done
  pg_up || { echo "error: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null \
    || { echo "error: cannot reach database 'test' on 127.0.0.1:5432 as postgres" >&2; exit 1; }
fi
have_nginx() { have nginx || [ -x /usr/sbin/nginx ]; }
if ! have_nginx; then
  # Debian starts a package's service on install unless policy-rc.d says no (101): say no, for now
  policy=/usr/sbin/policy-rc.d
  if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  echo "installing nginx (Debian's package) for the cluster tests"
  apt_install nginx || { echo "error: could not install nginx (apt-get install nginx failed)" >&2; exit 1; }
  have_nginx || { echo "error: nginx was installed but no nginx command is found" >&2; exit 1; }
fi
# the browser tests' headless Chromium: Debian's package, driven by playwright through its path
# (tests/browser/conftest.py); never a browser download. Without recommends: no desktop services.
have_chromium() { have chromium || [ -x /usr/bin/chromium ]; }
if ! have_chromium; then
  echo "installing chromium (Debian's package) for the browser tests"
  apt_install --no-install-recommends chromium fonts-liberation \
    || { echo "error: could not install chromium (apt-get install chromium failed)" >&2; exit 1; }
  have_chromium || { echo "error: chromium was installed but no chromium command is found" >&2; exit 1; }
fi
echo "services: Redis and PostgreSQL answer, nginx and chromium are installed"
