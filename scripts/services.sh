#!/usr/bin/env bash
# Make sure the services the tests need exist: redis-server (the tests start private
# instances of it), for the PostgreSQL session store's tests a running PostgreSQL on
# 127.0.0.1:5432 (they create a private database on it as user postgres), and, for the
# RabbitMQ broker tests, a running RabbitMQ on 5672.
# Installs with apt-get when missing (CI machines are Debian, run as root).
set -euo pipefail

apt_install() {
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "services: installing $*" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
  else
    echo "services: $* missing; install it (e.g. sudo apt-get install $*)" >&2
    return 1
  fi
}

command -v redis-server >/dev/null 2>&1 || apt_install redis-server
# promtool checks deploy/'s Prometheus config and alert rules, and the compose test runs
# the prometheus binary (tests/test_deploy.py skips both, with a reason, when missing).
command -v promtool >/dev/null 2>&1 || apt_install prometheus || true
# The console's browser tests drive Debian's Chromium, /usr/bin/chromium
# (tests/test_console.py skips without it locally, fails in CI).
[ -x /usr/bin/chromium ] || apt_install chromium || true

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if ! pg_up; then
  fresh=""
  if ! command -v pg_lsclusters >/dev/null 2>&1; then
    if apt_install postgresql; then fresh=1; else
      if [ "${CI:-}" = "true" ]; then exit 1; fi
      echo "services: PostgreSQL not running; its tests will be skipped (CI installs it)" >&2
    fi
  fi
  if command -v pg_lsclusters >/dev/null 2>&1; then
    cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 { print $1 " " $2 }')
    if [ -z "$cluster" ]; then
      version=$(ls /usr/lib/postgresql | sort -n | tail -1)
      pg_createcluster "$version" main >/dev/null && fresh=1
      cluster="$version main"
    fi
    if [ -n "$fresh" ]; then
      # a cluster made here, for tests: user postgres over 127.0.0.1 without a password
      # (the first matching line of pg_hba.conf wins)
      sed -i '1i host all postgres 127.0.0.1/32 trust' \
        "/etc/postgresql/${cluster% *}/${cluster#* }/pg_hba.conf"
    fi
    echo "services: starting PostgreSQL $cluster" >&2
    # shellcheck disable=SC2086 # "version name", two arguments
    pg_ctlcluster $cluster start >/dev/null 2>&1 || service postgresql start >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do pg_up && break; sleep 1; done
    if ! pg_up; then
      echo "services: PostgreSQL did not start" >&2
      if [ "${CI:-}" = "true" ]; then exit 1; fi
    fi
  fi
fi

rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! rabbit_up; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then apt_install rabbitmq-server; else
      echo "services: RabbitMQ not running; its tests will be skipped (CI installs it)" >&2
      exit 0
    fi
  fi
  echo "services: starting RabbitMQ" >&2
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do rabbit_up && break; sleep 1; done
  rabbit_up || { echo "services: RabbitMQ did not start" >&2; [ "${CI:-}" = "true" ] && exit 1; }
fi
exit 0
