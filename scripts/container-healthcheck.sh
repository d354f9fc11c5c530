#!/usr/bin/env bash
# Docker HEALTHCHECK of the Functions container: GET /api/health through the Functions host
# (so host and handler are both up). Uses bash's /dev/tcp: the base image has no curl.
set -euo pipefail

port=${QOTD_HEALTH_PORT:-8080}
exec 3<> "/dev/tcp/127.0.0.1/$port"
printf 'GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 5 status_line <&3
exec 3<&-
[[ "$status_line" == "HTTP/1.1 200"* ]]
