#!/bin/sh
# One host of a multi-host job: reports what it sees (hostname, resourceconfig, data, peers, S3, credentials),
# then writes a model file (host-specific, or the same name on every host when CLASH=1) and exits EXIT_CODE_<host>.
me=$(hostname)
echo "HOST $me"
echo "RESOURCE $(cat /opt/ml/input/config/resourceconfig.json)"
for f in $(find /opt/ml/input/data -type f | sort); do echo "DATA ${f#/opt/ml/input/data/}"; done
sleep "${SETTLE:-1}"
for peer in $PEERS; do
    ok=no
    for _ in 1 2 3 4 5; do
        if ping -c1 -W1 "$peer" >/dev/null 2>&1; then ok=yes; break; fi
        sleep 0.5
    done
    echo "PEER $peer $ok"
done
[ -n "$PEERS" ] && sleep "${LINGER:-3}"  # stay answerable until every peer has checked
if [ -n "$S3_HOST" ]; then
    if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "$S3_HOST" "$S3_PORT" | grep -q HTTP; then
        echo "S3 reachable"
    else
        echo "S3 unreachable"
    fi
fi
echo "CREDS ${AWS_ACCESS_KEY_ID:-none} ${AWS_SECRET_ACCESS_KEY:-none} ${AWS_ENDPOINT_URL_S3:-none}"
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
