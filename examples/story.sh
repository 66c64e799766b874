#!/usr/bin/env bash
# The story behind shredd, end to end, against a running daemon (start one
# with scripts/start.sh in another terminal; this script uses its default
# socket, or $SHREDD_SERVER).
#
#   photos from one source -> a face model trained on them -> a fine-tune
#   -> a regulator's order to delete the data and every model derived from it
#   -> the plan, the order, the certificate verified offline
#   -> re-uploading a deleted photo is refused.
#
# Usage: examples/story.sh [WORKDIR]   (default: a fresh temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
CTL=${SHREDCTL:-build/bin/shredctl}
[[ -x $CTL ]] || { echo "build first: scripts/build.sh" >&2; exit 1; }
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK/photos"
RUN=$(date +%s)-$RANDOM            # unique names, so the story can be re-run
SOURCE="dating-site-2014-$RUN"
step() { printf '\n== %s\n' "$*"; }

step "1. Photos from one source, each with a data subject"
for i in $(seq 1 12); do
  head -c 2048 /dev/urandom > "$WORK/photos/profile-$i.jpg"
  $CTL put "$WORK/photos/profile-$i.jpg" --dataset "$SOURCE" --subject "user-$((i % 4))-$RUN" \
    --label source=okc >/dev/null
done
head -c 2048 /dev/urandom > "$WORK/unrelated.jpg"
$CTL put "$WORK/unrelated.jpg" --dataset "stock-$RUN" >/dev/null
$CTL ls --dataset "$SOURCE" | head -3; echo "   ... ($($CTL ls --dataset "$SOURCE" | wc -l) photos)"

step "2. A face model trained on them, and a fine-tune of that model"
head -c 300000 /dev/urandom > "$WORK/face-model.safetensors"
head -c 100000 /dev/urandom > "$WORK/face-model-ft.safetensors"
head -c 100000 /dev/urandom > "$WORK/unrelated-model.safetensors"
$CTL model register "$WORK/face-model.safetensors" --trained-on "$SOURCE"
$CTL model register "$WORK/face-model-ft.safetensors" --derived-from "$WORK/face-model.safetensors" --relation fine-tune
$CTL model register "$WORK/unrelated-model.safetensors" --trained-on "stock-$RUN"
$CTL lineage "$WORK/face-model.safetensors"

step "3. The regulator's order: plan first (a dry run, nothing changes)"
ORDER=(--id "ftc-$RUN" --basis ftc-order --reference "FTC Docket C-4765" --requester "Federal Trade Commission"
       --due 2027-01-31 --dataset "$SOURCE")
$CTL order plan "${ORDER[@]}" -o "$WORK/plan.json"

step "4. Execute exactly the reviewed plan: one epoch of key destruction, one certificate"
# --yes: the plan was reviewed above (on a terminal, submit would ask).
$CTL order submit --plan "$WORK/plan.json" --yes -o "$WORK/certificate.json"
$CTL pubkey --format pem -o "$WORK/shredd.pem"

step "5. Anyone verifies the certificate offline (no daemon needed)"
$CTL verify "$WORK/certificate.json" --pubkey "$WORK/shredd.pem" --manifest "$WORK/certificate.manifest.json"
python3 - "$WORK/certificate.json" <<'PY'
import base64, json, sys
pred = json.loads(base64.b64decode(json.load(open(sys.argv[1]))["payload"]))["predicate"]
print("   order:", pred["order"]["basis"], pred["order"]["reference"])
print("   shredded:", pred["items"]["byKind"], "destroyed root epoch", pred["destruction"]["rootEpochDestroyed"])
for m in pred["derivedModels"]:
    print("   derived model", m["digest"][:23] + "...", "pulled in by", m["pulledInBy"])
PY

step "6. A shredded photo cannot come back"
if $CTL put "$WORK/photos/profile-1.jpg"; then echo "UNEXPECTED: re-upload accepted"; exit 1; fi
echo "   (refused, as it should be)"
$CTL get "$(sha256sum "$WORK/photos/profile-2.jpg" | cut -d' ' -f1 | sed 's/^/sha256:/')" >/dev/null 2>&1 \
  && { echo "UNEXPECTED: shredded photo readable"; exit 1; } || echo "   shredded photos are gone; unrelated data stays:"
$CTL ls --dataset "stock-$RUN"
echo; echo "files in $WORK"
