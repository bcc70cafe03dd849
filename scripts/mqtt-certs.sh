#!/usr/bin/env bash
# A private CA and the MQTT broker's TLS certificate, with openssl.
#
#   scripts/mqtt-certs.sh [OUT_DIR [CA_KEY [NAME ...]]]
#
# OUT_DIR (default secrets/mqtt-tls, which docker-compose.yml hands the broker) receives
#   ca.crt                  the private CA's certificate (10 years): give it to every client
#                           (TWITCHWATCH_MQTT_CA_FILE=OUT_DIR/ca.crt)
#   server.key, server.crt  the broker's key and certificate (825 days), valid for every NAME: the host
#                           names and IP addresses clients connect to (default: localhost 127.0.0.1
#                           mosquitto rabbitmq, the last two being the brokers' names inside the compose
#                           network; rabbitmq for the profile `scale`)
# CA_KEY (default secrets/mqtt-ca.key, outside OUT_DIR so the broker never sees it) is the CA's key: it
# signs certificates every client accepts, so keep it safe, or offline once you are done.
# The CA is made once and kept: rerun to renew the broker's certificate (or add names) under the same CA,
# and clients keep trusting it. Then restart the broker: docker compose up -d mosquitto-setup mosquitto
set -euo pipefail

out=${1:-secrets/mqtt-tls}
ca_key=${2:-secrets/mqtt-ca.key}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1 mosquitto rabbitmq)
command -v openssl >/dev/null || { echo "mqtt-certs.sh: openssl not found (Debian: apt-get install openssl)" >&2; exit 1; }

san=()
for name in "${names[@]}"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+=("IP:$name"); else san+=("DNS:$name"); fi
done
san_list=$(IFS=,; echo "${san[*]}")

umask 077
mkdir -p "$out" "$(dirname "$ca_key")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Extensions a strict verifier (Python ≥ 3.13's default VERIFY_X509_STRICT) asks for.
cat >"$work/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = twitchwatch
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san_list
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

if [ ! -s "$ca_key" ] || [ ! -s "$out/ca.crt" ]; then
    openssl req -x509 -config "$work/openssl.cnf" -extensions ca -newkey ec \
        -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ca_key" -out "$out/ca.crt" \
        -days 3650 -subj "/CN=twitchwatch private CA" 2>"$work/log" || { cat "$work/log" >&2; exit 1; }
    echo "made the private CA: $out/ca.crt (give it to clients), $ca_key (keep it safe)"
else
    echo "keeping the private CA ($out/ca.crt, $ca_key)"
fi

openssl req -new -config "$work/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out/server.key" -out "$work/server.csr" -subj "/CN=${names[0]}" 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
openssl x509 -req -in "$work/server.csr" -CA "$out/ca.crt" -CAkey "$ca_key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 825 -extfile "$work/openssl.cnf" -extensions server -out "$out/server.crt" 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
chmod 0644 "$out/ca.crt" "$out/server.crt"
echo "made the broker's certificate for ${names[*]}: $out/server.crt, $out/server.key"
openssl verify -CAfile "$out/ca.crt" "$out/server.crt" >/dev/null
