#!/usr/bin/env bash
# A wearer's MQTT account for the compose stack: the twitchwatch user USER (TWITCHWATCH_USER of the
# collector or simulator that streams that person's sensors) may publish only twitchwatch/USER/+/raw/+
# and twitchwatch/USER/+/status, and read only twitchwatch/USER/# (deploy/mosquitto/acl).
#
#   scripts/add-wearer.sh [--no-apply] USER
#
# Makes secrets/mqtt-wearers/USER (a random password) unless it exists; then, if the stack runs,
# rebuilds the broker's password file and ACL (the mosquitto-setup service) and has Mosquitto read them
# again, without a restart. With --no-apply, or with the stack down, that happens on the next
# `docker compose up -d`. For a Mosquitto of your own, use deploy/mosquitto/accounts.sh add-wearer.
set -euo pipefail
cd "$(dirname "$0")/.."
apply=yes
if [ "${1:-}" = --no-apply ]; then apply=no; shift; fi
[ $# -eq 1 ] || { echo "usage: scripts/add-wearer.sh [--no-apply] USER" >&2; exit 2; }
user=$1
if [[ ! $user =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || [[ $user == twitchwatch-worker || $user == twitchwatch-dashboard ]]; then
    echo "add-wearer.sh: '$user' is not a wearer name: 1-64 characters of A-Z a-z 0-9 _ . - (a twitchwatch user)" >&2
    exit 2
fi
mkdir -p secrets/mqtt-wearers
chmod 700 secrets  # readable by the containers' users (a bind mount), by no other user of this machine
umask 022
secret=secrets/mqtt-wearers/$user
if [ -s "$secret" ]; then
    echo "kept     $secret"
else
    openssl rand -hex 24 >"$secret"
    echo "made     $secret"
fi
if [ "$apply" = yes ] && command -v docker >/dev/null && [ -n "$(docker compose ps -q mosquitto 2>/dev/null)" ]; then
    docker compose run --rm mosquitto-setup
    docker compose kill -s SIGHUP mosquitto
    echo "the broker now knows $user"
fi
cat <<HINT
A collector for $user on another machine (secrets/mqtt-tls/ca.crt and $secret copied there):
  TWITCHWATCH_USER=$user TWITCHWATCH_MQTT_URL=mqtts://$user@BROKER_HOST:8883 \\
  TWITCHWATCH_MQTT_PASSWORD_FILE=$secret TWITCHWATCH_MQTT_CA_FILE=secrets/mqtt-tls/ca.crt twitchwatch collect
HINT
