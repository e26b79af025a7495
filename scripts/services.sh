#!/usr/bin/env bash
# Make sure the services the tests need exist: redis-server (the tests start private
# instances of it) and, for the RabbitMQ broker tests, a running RabbitMQ on 5672.
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
