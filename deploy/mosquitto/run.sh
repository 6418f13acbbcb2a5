#!/bin/sh
# Entrypoint of the `mqtt` service (eclipse-mosquitto:2 image, runs as root then Mosquitto drops
# to its own user).
#
# 1. On first start, create the shared password file with the server's user
#    (CREWLINE_MQTT_PASSWORD) and the ACL from acl.template, owned by the application's uid so
#    Crewline can maintain them.
# 2. Copy them to /mosquitto/runtime, owned by mosquitto with mode 0600, and start the broker.
# 3. Every few seconds, when the shared files changed, copy them again and send SIGHUP.
set -eu

# The paths can be moved for tests/infra, which runs this script against Debian's mosquitto.
home="${MOSQUITTO_HOME:-/mosquitto}"
conf="${MOSQUITTO_CONF:-$home/config/mosquitto.conf}"
template="${CREWLINE_ACL_TEMPLATE:-/crewline/acl.template}"
shared="${CREWLINE_MQTT_AUTH_DIR:-/var/lib/crewline/mqtt-auth}"
runtime="$home/runtime"
poll="${CREWLINE_AUTH_POLL_SECONDS:-3}"
app_uid="${CREWLINE_UID:-10001}"
server_user="${CREWLINE_MQTT_USER:-crewline-server}"
: "${CREWLINE_MQTT_PASSWORD:?CREWLINE_MQTT_PASSWORD must be set}"

mkdir -p "$shared" "$runtime" "$home/data"
if [ ! -s "$shared/passwd" ]; then
    mosquitto_passwd -c -b "$shared/passwd" "$server_user" "$CREWLINE_MQTT_PASSWORD"
fi
if [ ! -s "$shared/acl" ]; then
    cp "$template" "$shared/acl"
fi
chown "$app_uid" "$shared" "$shared/passwd" "$shared/acl"
chmod 0700 "$shared"
chmod 0600 "$shared/passwd" "$shared/acl"

sync_auth() {
    cp "$shared/passwd" "$runtime/passwd.new" && cp "$shared/acl" "$runtime/acl.new"
    chown mosquitto:mosquitto "$runtime/passwd.new" "$runtime/acl.new"
    chmod 0600 "$runtime/passwd.new" "$runtime/acl.new"
    mv "$runtime/passwd.new" "$runtime/passwd"
    mv "$runtime/acl.new" "$runtime/acl"
}
fingerprint() { cat "$shared/passwd" "$shared/acl" 2>/dev/null | cksum; }

sync_auth
chown -R mosquitto:mosquitto "$home/data" "$runtime"
last="$(fingerprint)"

mosquitto -c "$conf" &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null; wait "$broker"; exit 0' TERM INT

while kill -0 "$broker" 2>/dev/null; do
    sleep "$poll" &
    wait $! || true
    now="$(fingerprint)"
    if [ "$now" != "$last" ]; then
        sync_auth && kill -HUP "$broker" && last="$now"
        echo "crewline: reloaded password and ACL files"
    fi
done
wait "$broker"
