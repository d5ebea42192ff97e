# Multi-arch lists of the lab base image, built as OCI image layouts from files (no container
# runtime, no emulation): per arch, images.sh's base rootfs as one layer plus a layer with
# /usr/share/farm/arch (the lab arch name) and /usr/share/farm/list (the list's id), a config
# whose architecture is that arch's image name, and one image index over them. Deterministic:
# tar, gzip -n and jq give the same bytes for the same inputs. Sourced (after common.sh and
# images.sh) by services/registry.sh, which sets OCI_CACHE and pushes the layouts with skopeo.

# oci_arch (the image arch name of a lab arch) comes from boot-debs.sh, which images.sh sources.

# A blob from FILE into the layout: prints "sha256:HEX SIZE".
blob_add() {
  local layout=$1 file=$2 hex
  hex=$(sha256sum "$file" | cut -d' ' -f1)
  mv -f "$file" "$layout/blobs/sha256/$hex"
  echo "sha256:$hex $(stat -c %s "$layout/blobs/sha256/$hex")"
}

# ARCH's base layer, gzipped once per base tarball (gzip -n: the same bytes every time). Prints
# "DIFF_ID DIGEST SIZE" and leaves the blob in $OCI_CACHE.
base_layer() {
  local arch=$1 tar diff_id cached
  # images.sh's cached rootfs tarball of localhost/farm-lab/base for ARCH (built if missing):
  # each arch's own busybox and kernel.
  tar=$(images_tarball "base-$arch" "$(images_hash_base "$arch")" rootfs_base "$arch")
  diff_id=sha256:$(sha256sum "$tar" | cut -d' ' -f1)
  mkdir -p "$OCI_CACHE"
  cached=$OCI_CACHE/$arch-${diff_id#sha256:}.tar.gz
  if [[ ! -s $cached ]]; then
    rm -f "$OCI_CACHE/$arch"-*.tar.gz
    gzip -n -6 -c "$tar" >"$cached.tmp"
    mv -f "$cached.tmp" "$cached"
  fi
  echo "$diff_id sha256:$(sha256sum "$cached" | cut -d' ' -f1) $(stat -c %s "$cached")"
}

# Builds an OCI layout in DIR holding one image index, ref name "list", of the lab base for each
# ARCH with markers ID; CREATED is every timestamp. Prints the index's digest. The same inputs
# give the same bytes, so a list made again from the same base is the same list.
build_list() {
  local dir=$1 id=$2 created=$3
  shift 3
  local base_diff base_digest base_size a goarch work tar diff layer cfg man entries=() idx
  mkdir -p "$dir/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  for a in "$@"; do
    read -r base_diff base_digest base_size < <(base_layer "$a")
    ln -f "$OCI_CACHE/$a-${base_diff#sha256:}.tar.gz" "$dir/blobs/sha256/${base_digest#sha256:}"
    goarch=$(oci_arch "$a")
    work=$dir/marker-$a
    mkdir -p "$work/root/usr/share/farm"
    printf '%s\n' "$a" >"$work/root/usr/share/farm/arch"
    printf '%s\n' "$id" >"$work/root/usr/share/farm/list"
    chmod 755 "$work/root/usr" "$work/root/usr/share" "$work/root/usr/share/farm"
    chmod 644 "$work/root/usr/share/farm/arch" "$work/root/usr/share/farm/list"
    tar --sort=name --format=ustar --owner=0 --group=0 --numeric-owner --mtime=@0 \
      -C "$work/root" -cf "$work/layer.tar" usr
    diff=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    gzip -n -6 -c "$work/layer.tar" >"$work/layer.tar.gz"
    layer=$(blob_add "$dir" "$work/layer.tar.gz")
    jq -cnj --arg created "$created" --arg arch "$goarch" --arg lab "$a" --arg id "$id" \
      --arg base "$base_diff" --arg marker "$diff" '{
        created: $created, architecture: $arch, os: "linux",
        config: {
          Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
          Cmd: ["/bin/sh"],
          Labels: {"farm.lab.arch": $lab, "farm.lab.list": $id}
        },
        rootfs: {type: "layers", diff_ids: [$base, $marker]},
        history: [
          {created: $created, created_by: "scripts/lab.d/images.sh: the lab base (busybox rootfs)"},
          {created: $created, created_by: "scripts/lab.d/oci-list.sh: /usr/share/farm/arch and list"}
        ]
      }' >"$work/config.json"
    cfg=$(blob_add "$dir" "$work/config.json")
    jq -cnj --arg cd "${cfg% *}" --argjson cs "${cfg#* }" --arg bd "$base_digest" --argjson bs "$base_size" \
      --arg ld "${layer% *}" --argjson ls "${layer#* }" '{
        schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
        layers: [
          {mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $bd, size: $bs},
          {mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}
        ]
      }' >"$work/manifest.json"
    man=$(blob_add "$dir" "$work/manifest.json")
    entries+=("$(jq -cn --arg d "${man% *}" --argjson s "${man#* }" --arg arch "$goarch" \
      '{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s, platform: {architecture: $arch, os: "linux"}}')")
    rm -rf "$work"
  done
  printf '%s\n' "${entries[@]}" | jq -csj '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: .}' >"$dir/list.json"
  idx=$(blob_add "$dir" "$dir/list.json")
  jq -cnj --arg d "${idx% *}" --argjson s "${idx#* }" '{schemaVersion: 2, manifests: [
    {mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
     annotations: {"org.opencontainers.image.ref.name": "list"}}]}' >"$dir/index.json"
  echo "${idx% *}"
}
