#!/usr/bin/env bash
# The benchmark matrix of BENCHMARKS.md, one row per command:
#
#   host/bench/matrix.sh ROW [ROW...]     run these rows (each on a fresh agent and broker)
#   host/bench/matrix.sh all              run every row
#   host/bench/matrix.sh list             list the rows
#
# Environment: REQUESTS (default 20000 for the small Gets, 2000 for Device.), RUNS (start-up
# runs, default 7), CARGO_TARGET_DIR (default target), SMOKE=1 (a few hundred requests per row,
# for CI), AGENT and BENCH (use these binaries instead of building release ones), PUBLISH_QOS
# (the agent's MQTT PublishQoS; unset: the agent's default, 0) and CONTROLLER_QOS (usp-bench's
# MQTT QoS, default 0), OBUSPA (the reference agent's binary, for the obuspa-* rows: they run it
# on the same stock broker with the same controller, so both agents are measured in one run).
# Needs mosquitto (apt-get install mosquitto) and python3 (free ports).
# The broker is a stock mosquitto: Nagle's algorithm stays on (no `set_tcp_nodelay`), as on
# most deployed brokers, so the agent must not depend on it being off.
set -euo pipefail
cd "$(dirname "$0")/../.."
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/release

rows="get-endpointid-mqtt-w1 get-endpointid-mqtt-w16 get-endpointid-ws-w1 get-endpointid-ws-w16
get-deviceinfo-mqtt-w1 get-deviceinfo-mqtt-w16 get-deviceinfo-ws-w1 get-deviceinfo-ws-w16
get-device-mqtt-w1 get-device-mqtt-w16 get-device-ws-w1 get-device-ws-w16
gsdm-device-ws-w1 set-1-ws-w1 set-1-mqtt-w1 set-100-ws-w1 set-100-mqtt-w1
idle-rss idle-rss-plugins get-time-plugin-ws-w1 get-time-plugin-ws-w16
get-device-plugins-ws-w1 startup-mqtt startup-ws notify-ws notify-mqtt
obuspa-get-endpointid-mqtt-w1 obuspa-get-endpointid-mqtt-w16 obuspa-get-deviceinfo-mqtt-w1
obuspa-get-deviceinfo-mqtt-w16"

if [ "${1:-}" = "list" ] || [ $# -eq 0 ]; then
    echo "$rows" | tr ' ' '\n'
    exit 0
fi
[ "$1" = "all" ] && set -- $rows

if [ -z "${AGENT:-}" ] || [ -z "${BENCH:-}" ]; then
    cargo build --release --quiet -p usp-agent --bin usp-agent -p usp-bench
fi
agent_bin=${AGENT:-$bin/usp-agent}
bench_bin=${BENCH:-$bin/usp-bench}
command -v mosquitto >/dev/null || { echo "mosquitto is missing: apt-get install -y mosquitto" >&2; exit 1; }

agent_id="proto::bench-agent"
ctl_id="proto::bench-controller"
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 500); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.02
    done
    echo "nothing listens on port $1" >&2; return 1
}

# A fresh broker and agent for one row. $1: extra factory-reset lines.
setup() {
    local dir=$work/$row
    mkdir -p "$dir"
    mqtt_port=$(free_port); ws_port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n' "$mqtt_port" >"$dir/mosquitto.conf"
    mosquitto -c "$dir/mosquitto.conf" & pids+=($!)
    wait_port "$mqtt_port"
    {
        echo "Device.LocalAgent.Controller.1.EndpointID \"$ctl_id\""
        echo "Device.LocalAgent.Controller.1.Enable true"
        echo "Device.LocalAgent.Controller.1.Alias \"bench\""
        echo "Device.LocalAgent.Controller.1.AssignedRole \"Device.LocalAgent.ControllerTrust.Role.1\""
        printf '%s' "${1:-}"
    } >"$dir/factory-reset.txt"
    cat >"$dir/agent.toml" <<TOML
[agent]
endpoint_id = "$agent_id"
state_dir = "state"
factory_reset_file = "factory-reset.txt"
log = "warn"

[[mtp]]
name = "ws"
protocol = "websocket-server"
bind = "127.0.0.1"
port = $ws_port
path = "/usp"

[[mtp]]
name = "mqtt"
protocol = "mqtt"
broker_address = "127.0.0.1"
broker_port = $mqtt_port
response_topic = "usp/agent/$agent_id"
${PUBLISH_QOS:+publish_qos = $PUBLISH_QOS}
[[mtp.controllers]]
endpoint_id = "$ctl_id"
topic = "usp/controller/$ctl_id"
TOML
    if [ "${plugins:-0}" = 1 ]; then
        printf '\n[plugins]\nbundled = true\nreadable_dirs = ["/proc", "/sys"]\n' >>"$dir/agent.toml"
    fi
    config=$dir/agent.toml
}

start_agent() {
    "$agent_bin" --config "$config" 2>"$work/$row/agent.log" & agent_pid=$!
    pids+=($agent_pid)
    wait_port "$ws_port"
}

# The reference agent (OBUSPA) on a fresh stock broker, configured by its own factory-reset
# file format with the same Endpoint ID, topics and controller as our agent's rows.
start_obuspa() {
    [ -x "${OBUSPA:-}" ] || { echo "$row needs OBUSPA=<path to the obuspa binary>" >&2; exit 1; }
    local dir=$work/$row
    mkdir -p "$dir"
    mqtt_port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n' "$mqtt_port" >"$dir/mosquitto.conf"
    mosquitto -c "$dir/mosquitto.conf" & pids+=($!)
    wait_port "$mqtt_port"
    cat >"$dir/factory-reset.txt" <<RESET
Device.LocalAgent.Controller.1.EndpointID "$ctl_id"
Device.LocalAgent.Controller.1.Alias "bench"
Device.LocalAgent.Controller.1.Enable true
Device.LocalAgent.Controller.1.AssignedRole "Device.LocalAgent.ControllerTrust.Role.1"
Device.LocalAgent.Controller.1.MTP.1.Alias "bench"
Device.LocalAgent.Controller.1.MTP.1.Enable true
Device.LocalAgent.Controller.1.MTP.1.Protocol "MQTT"
Device.LocalAgent.Controller.1.MTP.1.MQTT.Reference "Device.MQTT.Client.1"
Device.LocalAgent.Controller.1.MTP.1.MQTT.Topic "usp/controller/$ctl_id"
Device.MQTT.Client.1.Alias "bench"
Device.MQTT.Client.1.Enable true
Device.MQTT.Client.1.BrokerAddress "127.0.0.1"
Device.MQTT.Client.1.BrokerPort "$mqtt_port"
Device.MQTT.Client.1.ProtocolVersion "5.0"
Device.MQTT.Client.1.TransportProtocol "TCP/IP"
Device.LocalAgent.MTP.1.Alias "bench"
Device.LocalAgent.MTP.1.Enable true
Device.LocalAgent.MTP.1.Protocol "MQTT"
Device.LocalAgent.MTP.1.MQTT.ResponseTopicConfigured "usp/agent/$agent_id"
Device.LocalAgent.MTP.1.MQTT.Reference "Device.MQTT.Client.1"
RESET
    USP_ENDPOINT_ID=$agent_id "$OBUSPA" -f "$dir/usp.db" -r "$dir/factory-reset.txt" \
        -s "$dir/cli.sock" -v 1 -l "$dir/obuspa.log" & agent_pid=$!
    pids+=($agent_pid)
    # Ready once it answers: its broker connection comes up after start.
    for _ in $(seq 1 50); do
        "$bench_bin" load $(target mqtt) --timeout 0.2 --requests 1 --warmup 0 \
            --op get:Device.LocalAgent.EndpointID >/dev/null 2>&1 && return 0
    done
    echo "obuspa never answered; its log: $dir/obuspa.log" >&2; return 1
}

target() { # $1: mqtt|ws
    if [ "$1" = mqtt ]; then echo --mqtt "mqtt://127.0.0.1:$mqtt_port" --qos "${CONTROLLER_QOS:-0}"; else echo --ws "ws://127.0.0.1:$ws_port/usp"; fi
    echo --agent-id "$agent_id" --controller-id "$ctl_id"
}

count() { # $1: default count
    if [ "${SMOKE:-0}" = 1 ]; then echo 300; else echo "${REQUESTS:-$1}"; fi
}

load() { # $1 mtp, $2 window, $3 requests, then --op ...
    local mtp=$1 window=$2 n=$3; shift 3
    "$bench_bin" load $(target "$mtp") --window "$window" --requests "$n" --agent-pid "$agent_pid" "$@"
}

hundred_subscriptions() {
    for i in $(seq 1 100); do
        printf 'Device.LocalAgent.Subscription.%s.ID "bench-%s"\n' "$i" "$i"
        printf 'Device.LocalAgent.Subscription.%s.NotifType "ValueChange"\n' "$i"
        printf 'Device.LocalAgent.Subscription.%s.ReferenceList "Device.DeviceInfo.SoftwareVersion"\n' "$i"
        printf 'Device.LocalAgent.Subscription.%s.Enable false\n' "$i"
        # Only persistent subscriptions outlive the restart that applies the factory defaults.
        printf 'Device.LocalAgent.Subscription.%s.Persistent true\n' "$i"
    done
}

set_100() { # $1: value
    local spec="set:" i
    for i in $(seq 1 100); do
        spec+="Device.LocalAgent.Subscription.$i.ReferenceList=$1;"
    done
    echo "${spec%;}"
}

for row in "$@"; do
    echo "== $row"
    # Rows naming plugins run the agent with the three first-party plugins loaded.
    case "$row" in *plugin*) plugins=1 ;; *) plugins=0 ;; esac
    case "$row" in
    get-device-plugins-ws-w1)
        setup; start_agent
        load ws 1 "$(count 2000)" --op get:Device. ;;
    get-endpointid-*-w*|get-deviceinfo-*-w*|get-device-*-w*)
        IFS=- read -r _ what mtp w <<<"$row"
        case $what in
            endpointid) path=Device.LocalAgent.EndpointID; n=$(count 20000) ;;
            deviceinfo) path=Device.DeviceInfo.; n=$(count 20000) ;;
            device) path=Device.; n=$(count 2000) ;;
        esac
        setup; start_agent
        load "$mtp" "${w#w}" "$n" --op "get:$path" ;;
    obuspa-get-endpointid-mqtt-w*|obuspa-get-deviceinfo-mqtt-w*)
        IFS=- read -r _ _ what _ w <<<"$row"
        case $what in
            endpointid) path=Device.LocalAgent.EndpointID ;;
            deviceinfo) path=Device.DeviceInfo. ;;
        esac
        start_obuspa
        load mqtt "${w#w}" "$(count 20000)" --op "get:$path" ;;
    gsdm-device-ws-w1)
        setup; start_agent
        load ws 1 "$(count 1000)" --op gsdm:Device. ;;
    set-1-*-w1)
        IFS=- read -r _ _ mtp _ <<<"$row"
        setup; start_agent
        load "$mtp" 1 "$(count 10000)" \
            --op set:Device.LocalAgent.Controller.1.ProvisioningCode=bench-a \
            --op set:Device.LocalAgent.Controller.1.ProvisioningCode=bench-b ;;
    set-100-*-w1)
        IFS=- read -r _ _ mtp _ <<<"$row"
        setup "$(hundred_subscriptions)"; start_agent
        load "$mtp" 1 "$(count 1000)" \
            --op "$(set_100 Device.DeviceInfo.HardwareVersion)" \
            --op "$(set_100 Device.DeviceInfo.SoftwareVersion)" ;;
    get-time-plugin-ws-w*)
        setup; start_agent
        load ws "${row##*-w}" "$(count 20000)" --op get:Device.Time. ;;
    idle-rss|idle-rss-plugins)
        setup; start_agent
        "$bench_bin" load $(target ws) --requests 1 --warmup 0 --op get:Device.LocalAgent.EndpointID >/dev/null
        sleep 2
        "$bench_bin" rss --pid "$agent_pid" ;;
    startup-mqtt|startup-ws)
        setup
        # An unmeasured first start creates the database: the measured runs start from an
        # existing one, as obuspa's figure did.
        "$bench_bin" startup $(target "${row#startup-}") --runs 1 --settle 0 -- "$agent_bin" --config "$config" >/dev/null
        "$bench_bin" startup $(target "${row#startup-}") --runs "${RUNS:-7}" -- "$agent_bin" --config "$config" ;;
    notify-ws|notify-mqtt)
        setup; start_agent
        "$bench_bin" notify $(target "${row#notify-}") --param Device.LocalAgent.Controller.1.ProvisioningCode \
            --count "$(count 500)" --rate-count "$(count 5000)" ;;
    *)
        echo "unknown row $row (host/bench/matrix.sh list)" >&2; exit 1 ;;
    esac
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
done
