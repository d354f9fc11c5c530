#!/usr/bin/env bash
# Builds the deployable Function App: dist/functionapp/ and dist/functionapp.zip.
#
#   dist/functionapp/host.json
#   dist/functionapp/<Name>/function.json     one folder per functions/<Name>/function.json
#   dist/functionapp/qotd                     the release binary (host.json runs it: `qotd serve`)
#   dist/functionapp/local.settings.json      a copy of local.settings.json.example (the runnable
#                                             local profile for `func start`); not in the zip
#   dist/bin/qotd                             the same binary, for the container image
#
# Linux x86_64 only (Flex Consumption and the Functions images are Linux x86_64). Builds the
# static musl target x86_64-unknown-linux-musl (rustup target add x86_64-unknown-linux-musl;
# C dependencies also need musl-gcc from musl-tools): a static binary runs on any Linux image.
# Without the musl target it stops and says how to install it; --glibc (or
# QOTD_TARGET=x86_64-unknown-linux-gnu) builds the host's glibc target on purpose, which runs
# only where the glibc is at least as new as the build machine's. It always prints the target
# it built and why. For `func start` alone, `qotd stage <dir>` writes the same folder layout
# from any build.
#
# Usage: scripts/package.sh [--skip-build] [--glibc]
#   --skip-build reuses the last release binary; --glibc accepts a dynamically linked build
set -euo pipefail

cd "$(dirname "$0")/.."
repo_root=$(pwd)

skip_build=false
allow_glibc=false
for arg in "$@"; do
  case "$arg" in
    --skip-build) skip_build=true ;;
    --glibc) allow_glibc=true ;;
    -h | --help)
      sed -n '2,21p' "$0"
      exit 0
      ;;
    *)
      echo "package.sh: unknown argument '$arg' (expected --skip-build or --glibc)" >&2
      exit 2
      ;;
  esac
done

musl=x86_64-unknown-linux-musl
if [[ -n "${QOTD_TARGET:-}" ]]; then
  target=$QOTD_TARGET
  why="QOTD_TARGET"
elif rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  target=$musl
  why="musl target installed: static binary"
elif [[ "$allow_glibc" == true ]]; then
  target=$(rustc -vV | sed -n 's/^host: //p')
  glibc=$(ldd --version 2>/dev/null | sed -n '1s/.* \([0-9][0-9]*\.[0-9][0-9]*\)$/\1/p')
  glibc=${glibc:-unknown}
  why="--glibc: dynamically linked against this machine's glibc $glibc; runs only on images with glibc >= $glibc"
else
  echo "package.sh: the static musl target $musl is not installed, and a glibc build is never" >&2
  echo "package.sh: made silently (it runs only where glibc is at least this machine's). Either:" >&2
  echo "package.sh:   rustup target add $musl && sudo apt-get install musl-tools   (recommended)" >&2
  echo "package.sh:   scripts/package.sh --glibc                                      (glibc on purpose)" >&2
  exit 1
fi
if [[ "$target" != x86_64-* ]]; then
  echo "package.sh: target $target is not x86_64; Azure Functions on Linux runs x86_64" >&2
  exit 1
fi
echo "package.sh: target $target ($why)"

build_args=(build --release --locked --bin qotd)
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
host_target=$(rustc -vV | sed -n 's/^host: //p')
if [[ "$target" == "$host_target" && -z "${QOTD_TARGET:-}" ]]; then
  binary=$target_dir/release/qotd
else
  build_args+=(--target "$target")
  binary=$target_dir/$target/release/qotd
  if [[ "$target" == *-musl ]] && command -v musl-gcc > /dev/null; then
    # C dependencies (bundled SQLite, aws-lc) must be compiled for musl too.
    export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}
  fi
fi

if [[ "$skip_build" == false ]]; then
  echo "package.sh: cargo ${build_args[*]}"
  cargo "${build_args[@]}"
fi
if [[ ! -x "$binary" ]]; then
  echo "package.sh: no binary at $binary (run without --skip-build)" >&2
  exit 1
fi

executable=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["customHandler"]["description"]["defaultExecutablePath"])' host.json)
if [[ "$executable" != "qotd" ]]; then
  echo "package.sh: host.json runs '$executable', but this script packages 'qotd'" >&2
  exit 1
fi

out=dist/functionapp
rm -rf "$out" dist/functionapp.zip dist/bin
mkdir -p "$out" dist/bin
# dist/ is build output: keep it out of git without touching the repository's .gitignore.
printf '*\n' > dist/.gitignore

cp host.json "$out/host.json"
count=0
for manifest in functions/*/function.json; do
  name=$(basename "$(dirname "$manifest")")
  mkdir -p "$out/$name"
  cp "$manifest" "$out/$name/function.json"
  count=$((count + 1))
done
install -m 0755 "$binary" "$out/qotd"
install -m 0755 "$binary" dist/bin/qotd
# The runnable local profile (SQLite, dev issuer, Azurite, Service Bus triggers disabled).
cp local.settings.json.example "$out/local.settings.json"

# Zip with explicit Unix modes (the executable bit must survive) and fixed timestamps, so the
# same inputs give the same archive; local.settings.json stays out.
python3 - "$out" dist/functionapp.zip << 'EOF'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
epoch = (1980, 1, 1, 0, 0, 0)
with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            arc = os.path.relpath(path, src)
            if arc == "local.settings.json":
                continue
            info = zipfile.ZipInfo(arc, date_time=epoch)
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3  # Unix, so the mode is honoured
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
EOF

linkage=$(file -b "$out/qotd" 2>/dev/null || echo "unknown (file(1) not installed)")
echo "package.sh: $count functions + host.json + qotd -> $out/"
echo "package.sh: built for $target ($why)"
echo "package.sh: binary: $linkage"
echo "package.sh: $(du -h dist/functionapp.zip | cut -f1) dist/functionapp.zip"
echo "package.sh: deploy with: az functionapp deployment source config-zip -g <rg> -n <app> --src dist/functionapp.zip"
echo "package.sh:          or: (cd $out && func azure functionapp publish <app>)"
