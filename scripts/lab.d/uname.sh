#!/bin/sh
# uname for a lab host (template: scripts/lab fills in the arch and the real binary's path and
# bind-mounts the result over /usr/bin/uname inside the host). The machine field is the host's
# arch; every other field comes from the real uname.
real='@REAL@'
arch='@ARCH@'

s='' n='' r='' v='' m='' p='' i='' o='' all=''
for a in "$@"; do
  case "$a" in
    --kernel-name) s=1 ;;
    --nodename) n=1 ;;
    --kernel-release) r=1 ;;
    --kernel-version) v=1 ;;
    --machine) m=1 ;;
    --processor) p=1 ;;
    --hardware-platform) i=1 ;;
    --operating-system) o=1 ;;
    --all) all=1 ;;
    --* | - | [!-]*) exec "$real" "$@" ;; # --help, --version, mistakes: the real one answers
    -*)
      flags=${a#-}
      while [ -n "$flags" ]; do
        c=${flags%"${flags#?}"}
        flags=${flags#?}
        case "$c" in
          s) s=1 ;; n) n=1 ;; r) r=1 ;; v) v=1 ;; m) m=1 ;; p) p=1 ;; i) i=1 ;; o) o=1 ;; a) all=1 ;;
          *) exec "$real" "$@" ;;
        esac
      done
      ;;
  esac
done

if [ -n "$all" ]; then
  s=1 n=1 r=1 v=1 m=1 o=1
  # Like GNU uname -a: processor and platform only when known.
  [ "$("$real" -p)" != unknown ] && p=1
  [ "$("$real" -i)" != unknown ] && i=1
fi
[ -z "$s$n$r$v$m$p$i$o" ] && s=1

out=''
add() { if [ -z "$out" ]; then out=$1; else out="$out $1"; fi; }
[ -n "$s" ] && add "$("$real" -s)"
[ -n "$n" ] && add "$("$real" -n)"
[ -n "$r" ] && add "$("$real" -r)"
[ -n "$v" ] && add "$("$real" -v)"
[ -n "$m" ] && add "$arch"
[ -n "$p" ] && add "$("$real" -p)"
[ -n "$i" ] && add "$("$real" -i)"
[ -n "$o" ] && add "$("$real" -o)"
printf '%s\n' "$out"
