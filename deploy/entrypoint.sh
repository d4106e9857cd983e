#!/bin/sh
# Give the data volume to the unprivileged user, then run `madre` as that user.
set -eu
if [ "$(id -u)" = "0" ]; then
    mkdir -p /app/data
    if [ "$(stat -c %u /app/data)" != "10001" ]; then
        chown -R madre:madre /app/data
    fi
    exec setpriv --reuid=madre --regid=madre --init-groups madre "$@"
fi
exec madre "$@"
