# syntax=docker/dockerfile:1
#
# The Functions container for qotd: the Azure Functions host (v4) with the qotd custom handler.
# Used by function_hosting = "container_apps" and by the migration job (`qotd migrate`).
#
# Build context = the output of scripts/package.sh (nothing is compiled here, so the image and
# the Flex zip carry the same binary):
#   scripts/package.sh && docker build -t qotd:dev .
#
# Layers, smallest-changing first: host.json + function.json folders, then the binary.
# The binary sits on PATH; host.json names it `qotd`, which the host resolves on PATH when the
# app root holds no file of that name.

# A Functions host v4 image (the host is all a custom handler needs; the .NET worker in it is
# unused). Pin by digest in production builds: --build-arg FUNCTIONS_IMAGE=...@sha256:...
ARG FUNCTIONS_IMAGE=mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated8.0
FROM ${FUNCTIONS_IMAGE}

ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    FUNCTIONS_WORKER_RUNTIME=custom \
    ASPNETCORE_URLS=http://+:8080 \
    HOME=/home/qotd \
    QOTD_DATA_DIR=/tmp/qotd

# Unprivileged user; 8080 needs no capability.
RUN groupadd --system --gid 10001 qotd \
 && useradd --system --uid 10001 --gid qotd --home-dir /home/qotd --create-home --shell /usr/sbin/nologin qotd

COPY --chown=root:root dist/functionapp/ /home/site/wwwroot/
COPY --chown=root:root --chmod=0755 scripts/container-healthcheck.sh /usr/local/bin/qotd-healthcheck
COPY --chown=root:root --chmod=0755 dist/bin/qotd /usr/local/bin/qotd

USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 CMD ["/usr/local/bin/qotd-healthcheck"]

# Start the host directly (the image's start script installs CA certificates as root).
CMD ["/azure-functions-host/Microsoft.Azure.WebJobs.Script.WebHost"]
