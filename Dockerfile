# syntax=docker/dockerfile:1
#
# The Functions container for qotd: the Azure Functions host (v4) with the qotd custom handler.
# Used by function_hosting = "container_apps", by the migration job (`qotd migrate`) and by
# compose.yaml (local containers against the dev environment).
#
# Build context = the output of scripts/package.sh (nothing is compiled here, so the image and
# the Flex zip carry the same binary):
#   scripts/package.sh && docker build -t qotd:dev .
#
# Layers, smallest-changing first: host.json + function.json folders, then the binary.
# The binary sits on PATH; host.json names it `qotd`, which the host resolves on PATH when the
# app root holds no file of that name.

# A supported Functions host v4 image. A custom handler needs only the host; the .NET 10 worker
# in this image is unused (the .NET 8 images left support on 2026-11-10, with .NET 8).
# Pin it by digest: FUNCTIONS_IMAGE=<this tag>@sha256:<digest>, written by
# `scripts/pin-base-image.sh` (needs registry access; docs/deploy.md, "Functions base image").
# Until that has been run the default below is a tag, and the deploy workflow warns about it.
ARG FUNCTIONS_IMAGE=mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated10.0
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
