#!/bin/bash
# The Debian packages the lab's bootable images are made of, for each lab arch: a kernel,
# busybox-static, dropbear with its libraries, and GRUB's platform files. They are fetched with
# `apt-get download` through dpkg's multiarch (arm64, ppc64el and s390x lists), and only unpacked
# with dpkg-deb -x later, so nothing foreign is installed or run on this machine.
#
#   scripts/lab.d/boot-debs.sh download   fetch what the cache lacks (scripts/install-deps runs it)
#   scripts/lab.d/boot-debs.sh check      list the cached packages; exit 1 naming what is missing
#
# The cache is $FARM_LAB_DEBS (default /var/cache/farm-lab/debs), one directory per Debian arch.
# A complete arch directory is never downloaded again: tests and `scripts/lab up` read it only.
# Sourced by images.sh for the same names (then it defines functions only).

BOOT_DEBS=${FARM_LAB_DEBS:-/var/cache/farm-lab/debs}
BOOT_ARCHES=(x86_64 aarch64 ppc64le s390x)

# Lab arch (uname -m) to Debian's and OCI's names.
deb_arch() {
  case $1 in x86_64) echo amd64 ;; aarch64) echo arm64 ;; ppc64le) echo ppc64el ;; s390x) echo s390x ;; *) return 1 ;; esac
}
oci_arch() {
  case $1 in x86_64) echo amd64 ;; aarch64) echo arm64 ;; ppc64le) echo ppc64le ;; s390x) echo s390x ;; *) return 1 ;; esac
}

# The kernel flavour: the cloud kernels where Debian has them (fewer drivers, faster boots).
boot_kernel_meta() {
  case $1 in x86_64) echo linux-image-cloud-amd64 ;; aarch64) echo linux-image-cloud-arm64 ;;
    ppc64le) echo linux-image-powerpc64le ;; s390x) echo linux-image-s390x ;; esac
}

# GRUB's platform files (modules, kernel.img) for grub-mkimage; s390x has no GRUB (zipl).
boot_grub_pkg() {
  case $1 in x86_64) echo grub-efi-amd64-bin ;; aarch64) echo grub-efi-arm64-bin ;;
    ppc64le) echo grub-ieee1275-bin ;; s390x) ;; esac
}

# dropbear-bin and the libraries it links (dpkg's Depends, and theirs: `apt-cache depends`).
BOOT_COMMON_PKGS=(busybox-static dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g)

boot_debs_dir() { echo "$BOOT_DEBS/$(deb_arch "$1")"; }

# Package names an arch's directory must hold (the kernel as the pattern linux-image-[0-9]*).
boot_pkgs() {
  local arch=$1 grub
  printf '%s\n' "${BOOT_COMMON_PKGS[@]}" 'linux-image-[0-9]*'
  grub=$(boot_grub_pkg "$arch")
  [[ -z $grub ]] || echo "$grub"
}

# The cached .deb of PKG (a name or the kernel pattern) for ARCH, or nothing (status 1).
boot_deb() {
  local arch=$1 pkg=$2 f
  for f in "$(boot_debs_dir "$arch")"/${pkg}_*.deb; do
    [[ -s $f ]] && { echo "$f"; return 0; }
  done
  return 1
}

boot_missing() {
  local arch=$1 p out=()
  while read -r p; do boot_deb "$arch" "$p" >/dev/null || out+=("$p"); done < <(boot_pkgs "$arch")
  ((${#out[@]} == 0)) || echo "${out[*]}"
}

# The versioned kernel package the flavour's metapackage points at, e.g. linux-image-6.1.0-57-cloud-arm64.
boot_kernel_pkg() {
  local arch=$1 da pkg
  da=$(deb_arch "$arch")
  pkg=$(apt-cache depends "$(boot_kernel_meta "$arch"):$da" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/:.*/, "", $2); print $2; exit }')
  [[ -n $pkg ]] || { echo "boot-debs: apt-cache knows no $(boot_kernel_meta "$arch"):$da" >&2; return 1; }
  echo "$pkg"
}

# dpkg learns the foreign arch and apt fetches its lists, once.
boot_add_arch() {
  local da=$1
  [[ $da == "$(dpkg --print-architecture)" ]] && return 0
  if ! dpkg --print-foreign-architectures | grep -qx "$da"; then
    echo "boot-debs: adding dpkg architecture $da"
    dpkg --add-architecture "$da"
    BOOT_NEED_UPDATE=1
  fi
  [[ -n $(apt-cache policy "busybox-static:$da" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)"') ]] || BOOT_NEED_UPDATE=1
}

boot_download_arch() {
  local arch=$1 da dir tmp kernel p pkgs=()
  da=$(deb_arch "$arch")
  dir=$(boot_debs_dir "$arch")
  kernel=$(boot_kernel_pkg "$arch")
  while read -r p; do
    [[ $p == 'linux-image-[0-9]*' ]] && p=$kernel
    pkgs+=("$p:$da")
  done < <(boot_pkgs "$arch")
  mkdir -p "$BOOT_DEBS"
  tmp=$(mktemp -d "$BOOT_DEBS/.download-$da.XXXXXX")
  # apt drops privileges to _apt for downloads; it needs to write here.
  chown _apt "$tmp" 2>/dev/null || true
  echo "boot-debs: downloading for $arch: ${pkgs[*]}"
  if ! (cd "$tmp" && apt-get download -q "${pkgs[@]}"); then
    rm -rf "$tmp"
    echo "boot-debs: apt-get download failed for $arch" >&2
    return 1
  fi
  chown -R root:root "$tmp"
  chmod 755 "$tmp"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

boot_debs_download() {
  local a da need=()
  [[ $(id -u) == 0 ]] || { echo "boot-debs: run as root (dpkg --add-architecture, apt-get)" >&2; return 1; }
  for a in "${BOOT_ARCHES[@]}"; do [[ -z $(boot_missing "$a") ]] || need+=("$a"); done
  ((${#need[@]} > 0)) || return 0
  BOOT_NEED_UPDATE=""
  for a in "${need[@]}"; do boot_add_arch "$(deb_arch "$a")"; done
  [[ -z $BOOT_NEED_UPDATE ]] || apt-get update -q
  for a in "${need[@]}"; do boot_download_arch "$a"; done
  boot_debs_check >/dev/null
}

boot_debs_check() {
  local a missing ok=0 kernel
  for a in "${BOOT_ARCHES[@]}"; do
    missing=$(boot_missing "$a")
    if [[ -n $missing ]]; then
      echo "boot-debs: $(boot_debs_dir "$a") lacks $missing; run scripts/install-deps" >&2
      ok=1
    else
      kernel=$(basename "$(boot_deb "$a" 'linux-image-[0-9]*')")
      printf '  %-8s %s\n' "$a" "${kernel%%_*} ($(du -sh "$(boot_debs_dir "$a")" | cut -f1))"
    fi
  done
  return $ok
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    download) boot_debs_download ;;
    check) boot_debs_check ;;
    *) sed -n '2,13s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
fi
