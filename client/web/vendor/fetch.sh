#!/usr/bin/env bash
# Vendors files of one npm package, at one exact version, into
# client/web/vendor/<scope>-<name>-<version>/ with its LICENSE and a README
# that records the version, the registry's sha512 integrity and the SHA-256
# of each copied file (docs/VERIFY.md, "Updating the vendored libraries").
#
#   client/web/vendor/fetch.sh @noble/ed25519 3.2.0 index.js
#   client/web/vendor/fetch.sh @noble/hashes 2.4.0 utils.js _u64.js _md.js sha2.js
#
# The tarball comes from `npm pack` (the npm registry), and its integrity is
# checked against `npm view ... dist.integrity` before anything is copied.
# Running it again for a vendored version and finding `git diff` empty
# re-verifies the copy. Nothing is modified: the build (cmake/web_page.cmake)
# turns the ES modules into one inline script.
set -euo pipefail
if (($# < 3)); then
  echo "usage: $0 PACKAGE VERSION FILE..." >&2
  exit 2
fi
pkg=$1 version=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
dir_name=$(printf '%s' "$pkg" | sed 's|^@||; s|/|-|g')-$version
dest=$here/$dir_name
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

want=$(npm view "$pkg@$version" dist.integrity)
(cd "$tmp" && npm pack "$pkg@$version" --silent >/dev/null)
tarball=$(ls "$tmp"/*.tgz)
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$got" != "$want" ]]; then
  echo "fetch.sh: $pkg@$version tarball has integrity $got, the registry says $want" >&2
  exit 1
fi
tar xzf "$tarball" -C "$tmp"
rm -rf "$dest"
mkdir -p "$dest"
cp "$tmp/package/LICENSE" "$dest/LICENSE"
{
  echo "# $pkg $version (vendored)"
  echo
  echo "Copied unmodified from the npm registry by \`client/web/vendor/fetch.sh\`:"
  echo
  echo "- package: \`$pkg\`"
  echo "- version: \`$version\` (exact; no range)"
  echo "- integrity (npm \`dist.integrity\`, checked against the packed tarball): \`$want\`"
  echo "- licence: $(node -p "require('$tmp/package/package.json').license") (LICENSE beside this file)"
  echo
  echo "Files (SHA-256 of each, as in the tarball's \`package/\` folder):"
  echo
  for f in "$@"; do
    cp "$tmp/package/$f" "$dest/$f"
    echo "- \`$f\` \`$(sha256sum "$dest/$f" | cut -d' ' -f1)\`"
  done
  echo
  echo "To re-check: run \`client/web/vendor/fetch.sh $pkg $version $*\` and"
  echo "see that \`git diff\` is empty."
} > "$dest/README.md"
echo "vendored $pkg@$version into $dest"
