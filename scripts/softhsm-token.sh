#!/bin/sh
# softhsm-token.sh DIR — create a throwaway SoftHSM2 token for tests.
#
# Writes DIR/softhsm2.conf (token directory DIR/tokens, file object store),
# initialises a token labelled "shredd" with user PIN 1234 and SO PIN 5678 in
# the first free slot, and prints the line to export on stdout:
#
#   eval "$(scripts/softhsm-token.sh /tmp/mytoken)"
#
# Never touches the system token directory (/var/lib/softhsm/tokens).
# Overridable: SHREDD_TOKEN_LABEL, SHREDD_TOKEN_PIN, SHREDD_TOKEN_SO_PIN.
# softhsm2-util's own chatter goes to stderr so stdout stays machine-readable.
set -eu

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
label=${SHREDD_TOKEN_LABEL:-shredd}
pin=${SHREDD_TOKEN_PIN:-1234}
so_pin=${SHREDD_TOKEN_SO_PIN:-5678}

command -v softhsm2-util >/dev/null 2>&1 || {
  echo "$0: softhsm2-util not found (apt-get install softhsm2)" >&2
  exit 1
}

mkdir -p -- "$1/tokens"
dir=$(cd -- "$1" && pwd -P)
case $dir in
  *"'"* | *'
'* | *' '* | *'	'*)
    echo "$0: directory path must not contain quotes or whitespace: $dir" >&2
    exit 2 ;;
esac
chmod 700 "$dir" "$dir/tokens"

conf="$dir/softhsm2.conf"
cat >"$conf" <<CONF
# Throwaway SoftHSM2 configuration written by scripts/softhsm-token.sh.
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = false
CONF

SOFTHSM2_CONF=$conf softhsm2-util --init-token --free --label "$label" \
  --pin "$pin" --so-pin "$so_pin" >&2

printf "export SOFTHSM2_CONF='%s'\n" "$conf"
