#!/bin/sh
# Copies the git client into a Lambda layer tree: bin/git, the https remote helper,
# the shared libraries they load (glibc's own excepted: the runtime has them) and the
# templates `git clone` copies. Run inside public.ecr.aws/lambda/python:3.12 (see
# Dockerfile); `OUT` is the layer's root, unpacked as /opt on Lambda, where /opt/bin
# is on PATH and /opt/lib on LD_LIBRARY_PATH. The job worker sets GIT_EXEC_PATH and
# GIT_TEMPLATE_DIR to the copies (template.yaml).
set -eu
OUT=${1:?usage: collect.sh OUT}
GIT=$(command -v git)
CORE=$(git --exec-path)
mkdir -p "$OUT/bin" "$OUT/libexec/git-core" "$OUT/lib" "$OUT/share/git-core"
cp "$GIT" "$OUT/bin/git"
# Only the helpers the service runs: every other subcommand is built into git. Copying
# the whole git-core folder would turn its hard links into ~150 copies of git (zip
# keeps no links), far beyond a layer's 250 MB.
for helper in git-remote-http git-remote-https; do
    cp "$CORE/$helper" "$OUT/libexec/git-core/$helper"
done
if [ -d /usr/share/git-core/templates ]; then
    cp -R /usr/share/git-core/templates "$OUT/share/git-core/templates"
fi
LOADER=$(ls /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1 2>/dev/null | head -n 1)
for binary in "$OUT/bin/git" "$OUT/libexec/git-core/git-remote-https"; do
    "$LOADER" --list "$binary"
done | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u | while read -r lib; do
    case "${lib##*/}" in
        libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux*) ;;
        *) cp -L "$lib" "$OUT/lib/" ;;
    esac
done
"$OUT/bin/git" --version
