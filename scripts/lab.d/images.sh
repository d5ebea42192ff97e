# The lab's container images. No registry is reachable, so both are made here from files on this
# machine and `podman import`ed into every host's own storage:
#   localhost/farm-lab/base:latest                 busybox-static rootfs, FROM of inventory/lab
#   localhost/farm-lab/bootc-image-builder:latest  the stand-in bib (lab.d/bib-standin, on node)
# Tarballs are cached in .lab/images/ under a hash of their inputs; an image whose label
# farm.lab.hash differs from the current hash is imported again.

LAB_IMAGES="$LAB_DIR/images"
LAB_HASH_LABEL=farm.lab.hash

# Host binaries the stand-in runs, copied with their shared libraries (ldd).
BIB_BINARIES=(node mke2fs sfdisk qemu-img mkfs.fat mkfs.vfat mkfs.btrfs mkfs.xfs)
BIB_ENTRYPOINT='ENTRYPOINT ["/usr/bin/node", "/usr/lib/farm-bib/bib.mjs"]'

bin_path() { command -v "$1" || PATH=/usr/sbin:/sbin:$PATH command -v "$1" || die "missing $1; run scripts/install-deps"; }

images_hash_base() {
  sha256sum /bin/busybox "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16
}

images_hash_bib() {
  local b
  {
    sha256sum /bin/busybox "${BASH_SOURCE[0]}" "$LAB_D"/bib-standin/*.mjs
    for b in "${BIB_BINARIES[@]}"; do sha256sum "$(readlink -f "$(bin_path "$b")")"; done
  } | sha256sum | cut -c1-16
}

# A merged-/usr skeleton with busybox and its applets.
rootfs_busybox() {
  local dir=$1 p
  mkdir -p "$dir"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,root,proc,sys,dev,run,tmp,var/tmp}
  chmod 1777 "$dir/tmp" "$dir/var/tmp"
  chmod 700 "$dir/root"
  ln -s usr/bin "$dir/bin"
  ln -s usr/sbin "$dir/sbin"
  ln -s usr/lib "$dir/lib"
  ln -s usr/lib64 "$dir/lib64"
  install -m 755 /bin/busybox "$dir/usr/bin/busybox"
  while read -r p; do
    [[ -e $dir/$p || -L $dir/$p ]] || ln -s /usr/bin/busybox "$dir/$p"
  done < <(/bin/busybox --list-full)
  echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
  echo 'root:x:0:' >"$dir/etc/group"
}

rootfs_base() {
  local dir=$1
  rootfs_busybox "$dir"
  cat >"$dir/etc/os-release" <<'EOF'
NAME="farm lab base"
ID=farm-lab
PRETTY_NAME="farm lab base (busybox)"
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
  local dir=$1 b
  rootfs_busybox "$dir"
  for b in "${BIB_BINARIES[@]}"; do rootfs_add_binary "$dir" "$b"; done
  # mke2fs reads its ext4 defaults from here.
  [[ -f /etc/mke2fs.conf ]] && install -m 644 /etc/mke2fs.conf "$dir/etc/mke2fs.conf"
  mkdir -p "$dir/usr/lib/farm-bib" "$dir/output"
  install -m 644 "$LAB_D"/bib-standin/*.mjs "$dir/usr/lib/farm-bib/"
  cat >"$dir/etc/os-release" <<'EOF'
NAME="farm lab bootc-image-builder stand-in"
ID=farm-lab-bib
PRETTY_NAME="farm lab stand-in for bootc-image-builder"
VERSION_ID=1
EOF
}

# Builds .lab/images/NAME-HASH.tar with FN unless it is cached; prints its path.
images_tarball() {
  local name=$1 hash=$2 fn=$3 out tmp
  out="$LAB_IMAGES/$name-$hash.tar"
  if [[ ! -s $out ]]; then
    log "building image tarball $name ($hash)"
    rm -f "$LAB_IMAGES/$name"-*.tar
    tmp=$(mktemp -d "$LAB_IMAGES/.rootfs-$name.XXXXXX")
    "$fn" "$tmp/root"
    tar --numeric-owner --owner=0 --group=0 -C "$tmp/root" -cf "$tmp/image.tar" .
    mv "$tmp/image.tar" "$out"
    rm -rf "$tmp"
  fi
  echo "$out"
}

# Imports TAR as REF into a host unless the host has it with this hash already.
images_import() {
  local arch=$1 ref=$2 tar=$3 hash=$4 change=${5:-} old hd
  hd=$(host_dir "$arch")
  old=$(host_run "$arch" podman image inspect --format "{{.Id}} {{index .Config.Labels \"$LAB_HASH_LABEL\"}}" "$ref" 2>/dev/null || true)
  [[ ${old#* } == "$hash" ]] && return 0
  log "$(host_name "$arch"): importing $ref"
  local args=(--change "LABEL $LAB_HASH_LABEL=$hash")
  [[ -n $change ]] && args+=(--change "$change")
  host_run "$arch" podman import "${args[@]}" "$tar" "$ref" >>"$hd/import.log" 2>&1 ||
    die "$(host_name "$arch"): podman import of $ref failed; see $hd/import.log"
  # The previous build of the image is now untagged; drop it (unless a container uses it).
  [[ -n $old ]] && host_run "$arch" podman rmi "${old%% *}" >>"$hd/import.log" 2>&1 || true
}

images_ensure() {
  mkdir -p "$LAB_IMAGES"
  local base_hash bib_hash base_tar bib_tar a pids=() failed=0 p
  base_hash=$(images_hash_base)
  bib_hash=$(images_hash_bib)
  base_tar=$(images_tarball base "$base_hash" rootfs_base)
  bib_tar=$(images_tarball bib-standin "$bib_hash" rootfs_bib)
  for a in "${LAB_ARCHES[@]}"; do
    (
      images_import "$a" "$LAB_BASE_IMAGE" "$base_tar" "$base_hash" 'CMD ["/bin/sh"]'
      images_import "$a" "$LAB_BIB_IMAGE" "$bib_tar" "$bib_hash" "$BIB_ENTRYPOINT"
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
