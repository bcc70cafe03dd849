#!/usr/bin/env bash
# Every secret docker-compose.yml needs, in ./secrets (made only where missing; never commit them):
#   influx_password, influx_token            InfluxDB's admin (setup only; no twitchwatch service has it)
#   influx_worker_password                   InfluxDB account twitchwatch-worker (read-write, one bucket)
#   influx_dashboard_password                InfluxDB account twitchwatch-dashboard (read, one bucket)
#   mqtt_worker_password                     MQTT account twitchwatch-worker
#   mqtt_dashboard_password                  MQTT account twitchwatch-dashboard
#   dashboard_password                       the dashboard's login (you type this one)
#   rabbitmq_worker_password, amqp_worker_url  RabbitMQ account twitchwatch-worker (profile `scale`)
#   mqtt-tls/, mqtt-ca.key                   the broker's TLS certificate and its private CA (mqtt-certs.sh)
#   mqtt-wearers/<user>                      one MQTT account per wearer: scripts/add-wearer.sh USER
# Run from the checkout: scripts/compose-secrets.sh [WEARER ...] (default: $TWITCHWATCH_USER, else "me").
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null || { echo "compose-secrets.sh: openssl not found (Debian: apt-get install openssl)" >&2; exit 1; }
# The directory keeps other users of this machine out. The files must stay readable by the containers'
# own users (compose bind-mounts each one as it is), so they are not 0600.
mkdir -p secrets/mqtt-wearers
chmod 700 secrets
umask 022

secret() { # name, openssl rand arguments
    local path=secrets/$1
    shift
    if [ -s "$path" ]; then
        echo "kept     $path"
    else
        openssl rand "$@" >"$path"
        echo "made     $path"
    fi
}

secret influx_password -hex 16
secret influx_token -hex 32
secret influx_worker_password -hex 24
secret influx_dashboard_password -hex 24
secret mqtt_worker_password -hex 24
secret mqtt_dashboard_password -hex 24
secret dashboard_password -base64 18
# The profile `scale` (docs/scaling.md): RabbitMQ's account for broker setup and the workers, and their AMQP
# URL with it (a secret as a whole: it holds the password).
secret rabbitmq_worker_password -hex 24
if [ -s secrets/amqp_worker_url ]; then
    echo "kept     secrets/amqp_worker_url"
else
    printf 'amqps://twitchwatch-worker:%s@rabbitmq:5671/?cafile=/run/secrets/mqtt_ca' \
        "$(cat secrets/rabbitmq_worker_password)" >secrets/amqp_worker_url
    echo "made     secrets/amqp_worker_url"
fi
if [ -s secrets/mqtt-tls/server.crt ]; then
    echo "kept     secrets/mqtt-tls (renew: scripts/mqtt-certs.sh)"
else
    scripts/mqtt-certs.sh secrets/mqtt-tls secrets/mqtt-ca.key
fi
wearers=("$@")
[ ${#wearers[@]} -gt 0 ] || wearers=("${TWITCHWATCH_USER:-me}")
for wearer in "${wearers[@]}"; do
    scripts/add-wearer.sh --no-apply "$wearer"
done
echo
echo "The dashboard's password is in secrets/dashboard_password. Next: docker compose up -d"
