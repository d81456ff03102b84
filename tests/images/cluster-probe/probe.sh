#!/bin/sh
# One host of a multi-host job: reports what it sees (hostname, resourceconfig, data, peers, S3, credentials),
# then writes a model file (host-specific, or the same name on every host when CLASH=1) and exits EXIT_CODE_<host>.
#
# PEERS="algo-1 algo-2 ...": no fixed sleeps, only conditions. Each host pings every peer until it answers
# (PEER <peer> yes) and then tells that peer "<me> has checked you" over TCP (port 7000); it exits only once
# every other peer has told it the same, so no host stops answering while a peer still has to check it.
# PEER_WAIT (default 60 s from the start) caps all of that waiting: a peer never seen is reported "no".
if [ "$1" = "--ack" ]; then  # one connection to this host's ack listener: a peer's name, answered "ok"
    read -r who
    [ -n "$who" ] && : > "/tmp/acks/$who" && echo ok
    exit 0
fi
# Its algo name from resourceconfig.json: on SageMaker the host name is the instance's (ip-10-...), not algo-N.
me=$(sed -n 's/.*"current_host": *"\([^"]*\)".*/\1/p' /opt/ml/input/config/resourceconfig.json)
ack_port=7000
deadline=$(($(date +%s) + ${PEER_WAIT:-60}))
in_time() { [ "$(date +%s)" -lt "$deadline" ]; }
if [ -n "$PEERS" ]; then
    mkdir -p /tmp/acks
    nc -ll -p "$ack_port" -e /bin/sh /opt/program/probe.sh --ack &
fi
echo "HOST $me"
echo "HOSTNAME $(hostname)"
echo "RESOURCE $(cat /opt/ml/input/config/resourceconfig.json)"
for f in $(find /opt/ml/input/data -type f | sort); do echo "DATA ${f#/opt/ml/input/data/}"; done
for peer in $PEERS; do
    ok=no
    until ping -c1 -W1 "$peer" >/dev/null 2>&1 && ok=yes; do
        in_time || break
        sleep 0.2
    done
    echo "PEER $peer $ok"
    if [ "$ok" = yes ] && [ "$peer" != "$me" ]; then
        until [ "$(echo "$me" | nc -w 5 "$peer" "$ack_port" 2>/dev/null)" = ok ]; do
            in_time || { echo "ACK $peer not told"; break; }
            sleep 0.2
        done
    fi
done
for peer in $PEERS; do  # stay answerable until every other peer has checked this host
    [ "$peer" = "$me" ] && continue
    until [ -e "/tmp/acks/$peer" ]; do
        in_time || { echo "ACK $peer never checked $me"; break; }
        sleep 0.2
    done
done
if [ -n "$S3_HOST" ]; then
    if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$S3_HOST" "$S3_PORT" | grep -q HTTP; then
        echo "S3 reachable"
    else
        echo "S3 unreachable"
    fi
fi
echo "CREDS ${AWS_ACCESS_KEY_ID:-none} ${AWS_SECRET_ACCESS_KEY:-none} ${AWS_ENDPOINT_URL_S3:-none}"
echo "REGION ${AWS_REGION:-none} ${AWS_DEFAULT_REGION:-none}"
echo "CREDURI ${AWS_CONTAINER_CREDENTIALS_FULL_URI:-none}"
if [ -n "$AWS_CONTAINER_CREDENTIALS_FULL_URI" ]; then
    echo "CREDDOC $(wget -q -O- "$AWS_CONTAINER_CREDENTIALS_FULL_URI" || echo unreachable)"
fi
if [ "${NEED_S3:-0}" = 1 ] && [ -z "$AWS_ENDPOINT_URL_S3" ]; then
    echo "cannot download the pretrained weights: no S3 endpoint" > /opt/ml/output/failure
    exit 3
fi
case "${CLASH:-0}" in
    1) echo "$me" > /opt/ml/model/model.txt ;;
    same) echo "identical weights" > /opt/ml/model/model.txt ;;
    *) echo "$me" > "/opt/ml/model/$me.txt" ;;
esac
eval "code=\${EXIT_CODE_$(echo "$me" | tr - _):-0}"
if [ "$code" != 0 ]; then echo "host $me failed on purpose" > /opt/ml/output/failure; fi
exit "$code"
