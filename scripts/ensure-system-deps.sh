#!/usr/bin/env bash
# The test suite starts its own Mosquitto, InfluxDB and RabbitMQ, drives a real Chromium and makes certificates with
# openssl; install them from Debian's packages when they are missing and this user may install packages.
set -euo pipefail
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_passwd >/dev/null || need+=(mosquitto)
command -v influxd >/dev/null || need+=(influxdb)
# The scale-out tests start their own RabbitMQ node (MQTT and consistent-hash plugins ship with it).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v chromium >/dev/null || need+=(chromium)
# The access-control tests make their private CA with scripts/mqtt-certs.sh.
command -v openssl >/dev/null || need+=(openssl)
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "installing Debian packages the tests need: ${need[*]}"
if [ "$(id -u)" = 0 ]; then sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n)
else
  echo "cannot install ${need[*]}: run 'sudo apt-get install ${need[*]}' and make test again" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packaged daemons may start on their standard ports; the tests never use those, so they are left alone.
