#!/bin/sh
# twitchwatch's MQTT accounts for Mosquitto: its password file and its ACL (`acl` beside this script).
#
#   accounts.sh build SECRETS WEARERS OUT [TLS]
#       What docker-compose.yml's mosquitto-setup service runs on every `docker compose up`: writes
#       OUT/passwd and OUT/acl afresh from
#         SECRETS/mqtt_worker_password     the worker's account, twitchwatch-worker
#         SECRETS/mqtt_dashboard_password  the dashboard's account, twitchwatch-dashboard
#         WEARERS/<user>                   one file per wearer (scripts/add-wearer.sh): its password
#       and, given TLS (a directory with ca.crt, server.crt and server.key: scripts/mqtt-certs.sh),
#       copies those to OUT/tls, readable by the broker alone.
#   accounts.sh add-wearer PASSWD ACL USER [PASSWORD_FILE]
#       For a Mosquitto of your own: adds the wearer USER to the password file PASSWD and its block to
#       ACL (both created if missing). The password is the first line of PASSWORD_FILE, else of standard
#       input. Then make the broker read both again: kill -HUP <its pid>.
#
# A wearer account is named after the twitchwatch user (TWITCHWATCH_USER) whose frames it publishes.
# Passwords never appear on a command line: mosquitto_passwd -U hashes a private user:password file.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

die() {
    echo "accounts.sh: $*" >&2
    exit 1
}

check_user() {
    case $1 in
    '' | *[!A-Za-z0-9_.-]*)
        die "wearer '$1': a twitchwatch user name is 1-64 characters of A-Z a-z 0-9 _ . - (no ':' here)" ;;
    twitchwatch-worker | twitchwatch-dashboard)
        die "'$1' is a service account, not a wearer" ;;
    esac
    [ "${#1}" -le 64 ] || die "wearer '$1': at most 64 characters"
}

# The first line of a file (a Docker secret ends with a newline), refused if empty.
read_secret() {
    [ -r "$1" ] || die "cannot read $1"
    line=$(head -n 1 "$1" | tr -d '\r')
    [ -n "$line" ] || die "$1 is empty: put the password on its first line"
    printf '%s' "$line"
}

# "user:password" → the password-file line, hashed by mosquitto_passwd.
hashed() {
    case $2 in
    *:*) die "the password of $1 contains ':', which mosquitto_passwd -U would cut it at: make another (openssl rand -hex 24)" ;;
    esac
    printf '%s:%s\n' "$1" "$2" >"$work/plain"
    mosquitto_passwd -U "$work/plain" || die "mosquitto_passwd could not hash the password of $1"
    cat "$work/plain"
    rm -f "$work/plain"
}

wearer_block() {
    printf '\n# wearer %s\nuser %s\n' "$1" "$1"
    printf 'topic write twitchwatch/%s/+/raw/+\n' "$1"
    printf 'topic write twitchwatch/%s/+/status\n' "$1"
    printf 'topic write twitchwatch/%s/felt\n' "$1"
    printf 'topic read twitchwatch/%s/#\n' "$1"
}

# Readable by the broker alone: it reads these again as its own user on SIGHUP.
private() {
    chmod 0600 "$@"
    if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
        chown mosquitto "$@"
    fi
}

build() {
    [ $# -ge 3 ] || die "usage: accounts.sh build SECRETS WEARERS OUT [TLS]"
    secrets=$1 wearers=$2 out=$3 tls=${4:-}
    worker=$(read_secret "$secrets/mqtt_worker_password")
    dashboard=$(read_secret "$secrets/mqtt_dashboard_password")
    hashed twitchwatch-worker "$worker" >"$work/passwd"
    hashed twitchwatch-dashboard "$dashboard" >>"$work/passwd"
    cp "$here/acl" "$work/acl"
    count=0
    for file in "$wearers"/*; do
        [ -f "$file" ] || continue
        user=$(basename "$file")
        check_user "$user"
        secret=$(read_secret "$file")
        hashed "$user" "$secret" >>"$work/passwd"
        wearer_block "$user" >>"$work/acl"
        count=$((count + 1))
    done
    [ "$count" -gt 0 ] || echo "accounts.sh: no wearers in $wearers yet: nothing may publish frames (scripts/add-wearer.sh NAME)" >&2
    mkdir -p "$out"
    private "$work/passwd" "$work/acl"
    mv "$work/passwd" "$work/acl" "$out/"
    if [ -n "$tls" ]; then
        for name in ca.crt server.crt server.key; do
            [ -r "$tls/$name" ] || die "$tls/$name is missing: make the broker's certificate with scripts/mqtt-certs.sh"
        done
        mkdir -p "$out/tls"
        cp "$tls/ca.crt" "$tls/server.crt" "$tls/server.key" "$out/tls/"
        private "$out/tls/ca.crt" "$out/tls/server.crt" "$out/tls/server.key"
    fi
    echo "accounts.sh: twitchwatch-worker, twitchwatch-dashboard and $count wearer(s) written to $out"
}

add_wearer() {
    [ $# -ge 3 ] || die "usage: accounts.sh add-wearer PASSWD ACL USER [PASSWORD_FILE]"
    passwd=$1 acl=$2 user=$3
    check_user "$user"
    if [ $# -ge 4 ]; then
        secret=$(read_secret "$4")
    else
        IFS= read -r secret || true
        [ -n "$secret" ] || die "no password on standard input"
    fi
    touch "$passwd" "$acl"
    ! grep -q "^$user:" "$passwd" || die "$user is already in $passwd (change a password with: mosquitto_passwd $passwd $user)"
    ! grep -qx "user $user" "$acl" || die "$user already has a block in $acl"
    hashed "$user" "$secret" >>"$passwd"
    wearer_block "$user" >>"$acl"
    chmod 0600 "$passwd"
    echo "accounts.sh: wearer $user added to $passwd and $acl; now reload the broker (kill -HUP)"
}

command=${1:-}
[ $# -gt 0 ] && shift
case $command in
build) build "$@" ;;
add-wearer) add_wearer "$@" ;;
*) die "usage: accounts.sh build SECRETS WEARERS OUT [TLS] | add-wearer PASSWD ACL USER [PASSWORD_FILE]" ;;
esac
