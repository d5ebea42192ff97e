# The lab's container images. No registry is reachable, so both are made here from files on this
# machine and `podman import`ed into every host's own storage:
#   localhost/farm-lab/base:latest                 per arch: a bootable busybox system, FROM of
#                                                  inventory/lab (the image's Architecture is the
#                                                  host's: amd64, arm64, ppc64le or s390x)
#   localhost/farm-lab/bootc-image-builder:latest  the stand-in bib (lab.d/bib-standin, on node)
# The base images are made of Debian packages of their own arch (lab.d/boot-debs.sh caches them;
# they are unpacked, never run): the kernel, busybox-static, dropbear and the init in lab.d/guest/.
# Tarballs are cached in .lab/images/ under a hash of their inputs; an image whose label
# farm.lab.hash differs from the current hash is imported again.

. "$LAB_D/boot-debs.sh"

LAB_IMAGES="$LAB_DIR/images"
LAB_HASH_LABEL=farm.lab.hash
LAB_GUEST="$LAB_D/guest"

# Host binaries the stand-in runs, copied with their shared libraries (ldd). grub-mkimage builds
# every GRUB platform's image from that platform's files; mtools writes into the FAT ESP.
BIB_BINARIES=(node mke2fs sfdisk qemu-img mkfs.fat mkfs.vfat mkfs.btrfs mkfs.xfs grub-mkimage mcopy mmd)
BIB_ENTRYPOINT='ENTRYPOINT ["/usr/bin/node", "/usr/lib/farm-bib/bib.mjs"]'

# Kernel modules the initramfs loads, in groups, when the flavour builds them as modules (those
# the kernel has built in have no .ko and are skipped): virtio disks and network first, then the
# root filesystem's group (rootfstype=, or all of them), then the cloud-init seed's filesystems.
# The crypto the filesystems ask for by alias (crypto-crc32c, ...) is named, as there is no modprobe.
declare -A BOOT_MODULE_GROUPS=(
  [base]="virtio_pci virtio_blk virtio_net"
  [ext4]="crc32c_generic ext4"
  [xfs]="crc32c_generic xfs"
  [btrfs]="crc32c_generic xxhash_generic blake2b_generic btrfs"
  [seed]="vfat nls_cp437 nls_ascii nls_utf8 isofs"
)

# Where each arch's console is (bootc's kargs.d, which the stand-in reads like bib).
boot_console() {
  case $1 in x86_64) echo ttyS0,115200 ;; aarch64) echo ttyAMA0 ;; ppc64le) echo hvc0 ;; s390x) echo ttysclp0 ;; esac
}

bin_path() { command -v "$1" || PATH=/usr/sbin:/sbin:$PATH command -v "$1" || die "missing $1; run scripts/install-deps"; }

# The cached .deb of a package, or a clear error.
need_deb() {
  boot_deb "$1" "$2" || die "no cached $2 for $1 in $(boot_debs_dir "$1"); run scripts/install-deps"
}

images_hash_base() {
  local arch=$1 p
  {
    echo "$arch"
    sha256sum /bin/busybox "${BASH_SOURCE[0]}" "$LAB_D/boot-debs.sh" "$LAB_GUEST"/*
    while read -r p; do basename "$(need_deb "$arch" "$p")"; done < <(boot_pkgs "$arch")
  } | sha256sum | cut -c1-16
}

images_hash_bib() {
  local b a g
  {
    sha256sum /bin/busybox "${BASH_SOURCE[0]}" "$LAB_D"/bib-standin/*.mjs
    for b in "${BIB_BINARIES[@]}"; do sha256sum "$(readlink -f "$(bin_path "$b")")"; done
    for a in "${BOOT_ARCHES[@]}"; do
      g=$(boot_grub_pkg "$a")
      [[ -z $g ]] || basename "$(need_deb "$a" "$g")"
    done
  } | sha256sum | cut -c1-16
}

# A merged-/usr skeleton with BUSYBOX (a busybox-static of the image's arch) and its applets; the
# applet list comes from this machine's busybox-static, the same Debian version.
rootfs_busybox() {
  local dir=$1 busybox=${2:-/bin/busybox} p
  mkdir -p "$dir"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,root,proc,sys,dev,run,tmp,var/tmp}
  chmod 1777 "$dir/tmp" "$dir/var/tmp"
  chmod 700 "$dir/root"
  ln -s usr/bin "$dir/bin"
  ln -s usr/sbin "$dir/sbin"
  ln -s usr/lib "$dir/lib"
  ln -s usr/lib64 "$dir/lib64"
  install -m 755 "$busybox" "$dir/usr/bin/busybox"
  while read -r p; do
    [[ -e $dir/$p || -L $dir/$p ]] || ln -s /usr/bin/busybox "$dir/$p"
  done < <(/bin/busybox --list-full)
  echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
  echo 'root:x:0:' >"$dir/etc/group"
}

# .modinfo's depends= of a kernel module (any arch or endianness: it is a NUL-separated string).
modinfo_depends() {
  grep -az '^depends=' "$1" | head -zn1 | tr -d '\0' | sed 's/^depends=//'
}

# The .ko files of MODULES... under DIR with their dependencies, dependencies first.
initrd_modules() {
  local dir=$1 f n
  shift
  local -A ko=() seen=()
  while IFS= read -r f; do
    n=${f##*/}
    n=${n%.ko}
    ko[${n//-/_}]=$f
  done < <(find "$dir" -name '*.ko')
  visit() {
    local n=${1//-/_} d
    [[ -z ${seen[$n]:-} ]] || return 0
    seen[$n]=1
    [[ -n ${ko[$n]:-} ]] || return 0 # built in (or not in this flavour)
    for d in $(modinfo_depends "${ko[$n]}" | tr , ' '); do visit "$d"; done
    echo "${ko[$n]}"
  }
  for n in "$@"; do visit "$n"; done
}

# The initramfs: the arch's busybox, the modules (one ordered list per group in
# /etc/modules.d/), lab.d/guest/initramfs-init as /init.
make_initrd() {
  local deb=$1 kver=$2 busybox=$3 out=$4 tmp f n g
  tmp=$(mktemp -d "$LAB_IMAGES/.initrd.XXXXXX")
  mkdir -p "$tmp"/{bin,dev,etc/modules.d,lib/modules,proc,sys,sysroot}
  install -m 755 "$busybox" "$tmp/bin/busybox"
  install -m 755 "$LAB_GUEST/initramfs-init" "$tmp/init"
  # The kernel opens /dev/console for /init before anything is mounted.
  mknod -m 600 "$tmp/dev/console" c 5 1
  for g in "${!BOOT_MODULE_GROUPS[@]}"; do
    : >"$tmp/etc/modules.d/$g"
    # shellcheck disable=SC2086
    while read -r f; do
      n=$(basename "$f" .ko)
      install -m 644 "$f" "$tmp/lib/modules/$n.ko"
      echo "$n" >>"$tmp/etc/modules.d/$g"
    done < <(initrd_modules "$deb/lib/modules/$kver" ${BOOT_MODULE_GROUPS[$g]})
  done
  (cd "$tmp" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null) | gzip -6 >"$out"
  rm -rf "$tmp"
}

# A bootable base image for ARCH in DIR.
rootfs_base() {
  local arch=$1 dir=$2 x p kver kernel
  x=$(mktemp -d "$LAB_IMAGES/.debs-$arch.XXXXXX")
  while read -r p; do dpkg-deb -x "$(need_deb "$arch" "$p")" "$x"; done < <(boot_pkgs "$arch" | grep -v '^grub-')
  rootfs_busybox "$dir" "$x/bin/busybox"

  # dropbear and the libraries it links, at Debian's paths (lib/ is usr/lib/ here).
  (cd "$x" && find lib usr/lib $([[ -d lib64 ]] && echo lib64) -maxdepth 2 \( -name 'ld-*.so*' -o -name 'ld64.so*' -o -name 'libc.so.6' \
    -o -name 'libcrypt.so.1*' -o -name 'libz.so.1*' -o -name 'libtomcrypt.so.1*' -o -name 'libtommath.so.1*' \
    -o -name 'libgmp.so.10*' \) 2>/dev/null |
    tar -cf - -T - usr/sbin/dropbear usr/bin/dropbearkey usr/bin/dropbearconvert) |
    tar -C "$dir" -xf - --keep-directory-symlink
  printf '/bin/sh\n' >"$dir/etc/shells"
  echo 'root:*:20000:0:99999:7:::' >"$dir/etc/shadow"
  chmod 600 "$dir/etc/shadow"

  # The kernel (vmlinuz, or vmlinux on ppc64el), its config, and an initramfs, in /boot.
  kver=$(basename "$(find "$x/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
  [[ -n $kver ]] || die "$arch: the kernel package has no lib/modules/<version>"
  kernel=$(find "$x/boot" -maxdepth 1 \( -name "vmlinuz-$kver" -o -name "vmlinux-$kver" \) | head -n1)
  [[ -n $kernel ]] || die "$arch: the kernel package has no /boot/vmlinu[xz]-$kver"
  mkdir -p "$dir/boot"
  install -m 644 "$kernel" "$dir/boot/"
  install -m 644 "$x/boot/config-$kver" "$dir/boot/"
  make_initrd "$x" "$kver" "$x/bin/busybox" "$dir/boot/initrd.img-$kver"
  rm -rf "$x"

  # The init (busybox init + lab.d/guest), the arch marker, the console for bootc's kargs.
  install -m 644 "$LAB_GUEST/inittab" "$dir/etc/inittab"
  mkdir -p "$dir/usr/lib/farm-lab" "$dir/usr/share/farm" "$dir/usr/lib/bootc/kargs.d"
  for p in boot console-login udhcpc shutdown; do install -m 755 "$LAB_GUEST/$p" "$dir/usr/lib/farm-lab/$p"; done
  install -m 644 "$LAB_GUEST/cloud-config.awk" "$dir/usr/lib/farm-lab/"
  echo "$arch" >"$dir/usr/share/farm/arch"
  printf 'kargs = ["console=%s"]\n' "$(boot_console "$arch")" >"$dir/usr/lib/bootc/kargs.d/10-farm-lab-console.toml"
  cat >"$dir/etc/os-release" <<EOF
NAME="farm lab base"
ID=farm-lab
PRETTY_NAME="farm lab base ($arch, busybox, Debian kernel $kver)"
VERSION_ID=1
EOF
}

# Copies a host binary and the libraries ldd names, at the same paths (resolved through the
# merged-/usr symlinks, keeping each library's soname as its file name).
rootfs_add_binary() {
  local dir=$1 bin lib dest
  bin=$(bin_path "$2")
  dest="$dir$(readlink -f "$(dirname "$bin")")/$(basename "$bin")"
  rm -f "$dest"
  install -D -m 755 "$(readlink -f "$bin")" "$dest"
  while read -r lib; do
    dest="$dir$(readlink -f "$(dirname "$lib")")/$(basename "$lib")"
    [[ -e $dest ]] || install -D -m 755 "$lib" "$dest"
  done < <(ldd "$(readlink -f "$bin")" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}

rootfs_bib() {
  local dir=$1 b a g x
  rootfs_busybox "$dir"
  for b in "${BIB_BINARIES[@]}"; do rootfs_add_binary "$dir" "$b"; done
  # mke2fs reads its ext4 defaults from here.
  [[ -f /etc/mke2fs.conf ]] && install -m 644 /etc/mke2fs.conf "$dir/etc/mke2fs.conf"
  # mtools converts FAT names through iconv (code page 850): glibc's gconv module for it.
  local gconv
  gconv=$(dirname "$(readlink -f "$(ldd "$(readlink -f "$(bin_path mcopy)")" | awk '$1 ~ /^libc\.so/ {print $3}')")")/gconv
  [[ -f $gconv/IBM850.so ]] || die "no $gconv/IBM850.so (glibc's gconv modules) for mtools"
  mkdir -p "$dir$gconv"
  cp -a "$gconv/gconv-modules" "$gconv/gconv-modules.d" "$gconv/IBM850.so" "$gconv/IBM437.so" "$dir$gconv/"
  # GRUB's platform files (x86_64-efi, arm64-efi, powerpc-ieee1275) for grub-mkimage -d.
  for a in "${BOOT_ARCHES[@]}"; do
    g=$(boot_grub_pkg "$a")
    [[ -n $g ]] || continue
    x=$(mktemp -d "$LAB_IMAGES/.grub.XXXXXX")
    dpkg-deb -x "$(need_deb "$a" "$g")" "$x"
    mkdir -p "$dir/usr/lib/grub"
    (cd "$x/usr/lib/grub" && find . -maxdepth 2 \( -name '*.mod' -o -name '*.lst' -o -name '*.img' \) | tar -cf - -T -) |
      tar -C "$dir/usr/lib/grub" -xf -
    rm -rf "$x"
  done
  mkdir -p "$dir/usr/lib/farm-bib" "$dir/output"
  install -m 644 "$LAB_D"/bib-standin/*.mjs "$dir/usr/lib/farm-bib/"
  cat >"$dir/etc/os-release" <<'EOF'
NAME="farm lab bootc-image-builder stand-in"
ID=farm-lab-bib
PRETTY_NAME="farm lab stand-in for bootc-image-builder"
VERSION_ID=1
EOF
}

# Builds .lab/images/NAME-HASH.tar with FN ARGS... DIR unless it is cached; prints its path.
images_tarball() {
  local name=$1 hash=$2 out tmp
  shift 2
  out="$LAB_IMAGES/$name-$hash.tar"
  if [[ ! -s $out ]]; then
    log "building image tarball $name ($hash)"
    rm -f "$LAB_IMAGES/$name"-*.tar
    tmp=$(mktemp -d "$LAB_IMAGES/.rootfs-$name.XXXXXX")
    "$@" "$tmp/root"
    tar --numeric-owner --owner=0 --group=0 -C "$tmp/root" -cf "$tmp/image.tar" .
    mv "$tmp/image.tar" "$out"
    rm -rf "$tmp"
  fi
  echo "$out"
}

# Imports TAR as REF into a host unless the host has it with this hash already.
images_import() {
  local arch=$1 ref=$2 tar=$3 hash=$4 image_arch=$5 change=${6:-} old hd
  hd=$(host_dir "$arch")
  old=$(host_run "$arch" podman image inspect --format "{{.Id}} {{index .Config.Labels \"$LAB_HASH_LABEL\"}}" "$ref" 2>/dev/null || true)
  [[ ${old#* } == "$hash" ]] && return 0
  log "$(host_name "$arch"): importing $ref ($image_arch)"
  local args=(--arch "$image_arch" --change "LABEL $LAB_HASH_LABEL=$hash")
  [[ -n $change ]] && args+=(--change "$change")
  host_run "$arch" podman import "${args[@]}" "$tar" "$ref" >>"$hd/import.log" 2>&1 ||
    die "$(host_name "$arch"): podman import of $ref failed; see $hd/import.log"
  # The previous build of the image is now untagged; drop it (unless a container uses it).
  [[ -n $old ]] && host_run "$arch" podman rmi "${old%% *}" >>"$hd/import.log" 2>&1 || true
}

images_ensure() {
  mkdir -p "$LAB_IMAGES"
  local bib_hash bib_tar a pids=() failed=0 p
  local -A base_hash=() base_tar=()
  for a in "${LAB_ARCHES[@]}"; do
    base_hash[$a]=$(images_hash_base "$a")
    base_tar[$a]=$(images_tarball "base-$a" "${base_hash[$a]}" rootfs_base "$a")
  done
  bib_hash=$(images_hash_bib)
  bib_tar=$(images_tarball bib-standin "$bib_hash" rootfs_bib)
  for a in "${LAB_ARCHES[@]}"; do
    (
      images_import "$a" "$LAB_BASE_IMAGE" "${base_tar[$a]}" "${base_hash[$a]}" "$(oci_arch "$a")" 'CMD ["/bin/sh"]'
      # The stand-in is this machine's own binaries, whatever arch the host pretends to be.
      images_import "$a" "$LAB_BIB_IMAGE" "$bib_tar" "$bib_hash" "$(oci_arch "$(uname -m)")" "$BIB_ENTRYPOINT"
    ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  ((failed == 0)) || die "importing images failed (see messages above)"
}

# Short names of the farm-lab images a host has, e.g. "base,bootc-image-builder".
images_present() {
  host_run "$1" podman images --format '{{.Repository}}' 2>/dev/null |
    sed -n 's|^localhost/farm-lab/||p' | sort -u | paste -sd, -
}
