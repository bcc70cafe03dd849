#!/bin/bash
# twitchwatch's InfluxDB 2.x accounts, each limited to the twitchwatch bucket: the worker and the dashboard
# never hold the admin token (which may do anything to every bucket, user and token).
#
# influxdb:2.7 runs this once, after its first setup (docker-compose.yml mounts it in
# /docker-entrypoint-initdb.d). They are v1-compatible authorizations: a user name and a password (the
# compose secrets), which is what twitchwatch sends InfluxDB's v1 API (TWITCHWATCH_INFLUX_USERNAME and
# TWITCHWATCH_INFLUX_PASSWORD_FILE), as it would to an InfluxDB 1.x user.
#   twitchwatch-worker     read and write: it stores events and minutes, and reads back a restarted
#                          stream's minute and the history its flags are computed from
#   twitchwatch-dashboard  read; read-write when DASHBOARD_INFLUX_ACCESS=read-write (needed to add and
#                          delete journal entries on the dashboard's Journal page)
# To change a password or the dashboard's access later (or on a stack set up before this script existed),
# update the secret or .env and run it again; it replaces both accounts:
#   docker compose up -d influxdb
#   docker compose exec influxdb /docker-entrypoint-initdb.d/twitchwatch-accounts.sh
set -euo pipefail

org=${DOCKER_INFLUXDB_INIT_ORG:?}
bucket=${DOCKER_INFLUXDB_INIT_BUCKET:?}
dashboard_access=${DASHBOARD_INFLUX_ACCESS:-read}
say() { echo "twitchwatch-accounts: $*" >&2; }

case $dashboard_access in
read | read-write) ;;
*) say "DASHBOARD_INFLUX_ACCESS=$dashboard_access: use read or read-write"; exit 1 ;;
esac

INFLUX_TOKEN=$(cat "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE:-/run/secrets/influx_token}")
export INFLUX_TOKEN
# Set by the image during its setup; looked up when run by hand.
bucket_id=${DOCKER_INFLUXDB_INIT_BUCKET_ID:-$(influx bucket list --org "$org" --name "$bucket" --hide-headers | cut -f1)}
[ -n "$bucket_id" ] || { say "no bucket $bucket in organisation $org"; exit 1; }

account() { # name, password file, read | read-write
    local name=$1 secret=$2 access=$3 password
    password=$(head -n 1 "$secret" | tr -d '\r')
    [ -n "$password" ] || { say "$secret is empty: put the password on its first line"; exit 1; }
    local grants=(--read-bucket "$bucket_id")
    [ "$access" = read-write ] && grants+=(--write-bucket "$bucket_id")
    # Permissions of an authorization cannot be changed: replace it.
    influx v1 auth delete --username "$name" >/dev/null 2>&1 || true
    influx v1 auth create --org "$org" --username "$name" --password "$password" "${grants[@]}" \
        --description "twitchwatch: $name, $access on bucket $bucket" >/dev/null
    say "$name: $access on bucket $bucket"
}

account twitchwatch-worker /run/secrets/influx_worker_password read-write
account twitchwatch-dashboard /run/secrets/influx_dashboard_password "$dashboard_access"
