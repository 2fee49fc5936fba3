#!/bin/sh
# Makes the help2man include file of diskfarm-gateway(8): the static
# sections, then a section per command with that command's own --help
# (mount and attach; a command this build lacks is left out).
#   gateway-h2m.sh PROGRAM STATIC.h2m OUT.h2m
set -eu
prog=$1 static=$2 out=$3
{
  cat "$static"
  for cmd in mount attach; do
    if help=$("$prog" "$cmd" --help 2>/dev/null); then
      printf '[%s COMMAND]\n.nf\n' "$(echo "$cmd" | tr a-z A-Z)"
      printf '%s\n' "$help" | sed 's/\\/\\e/g; s/^\([.'"'"']\)/\\\&\1/'
      printf '.fi\n\n'
    fi
  done
} >"$out.tmp"
mv "$out.tmp" "$out"
