# Reads the two parts of a #cloud-config user-data that the lab images honour (a YAML subset):
#   ssh_authorized_keys:            each "- key" line is appended to the file named by -v keys=
#     - ssh-ed25519 AAAA... comment
#   ssh_keys:                       each "<type>_private: |" block is written to
#     ed25519_private: |              <hostdir>/<type>.openssh (rsa, ecdsa, ed25519)
#       -----BEGIN OPENSSH PRIVATE KEY-----
#       ...
# Anything else (users:, packages:, ...) is ignored.
function indent(s) {
  match(s, /^[ \t]*/)
  return RLENGTH
}
function unquote(v) {
  sub(/^[ \t]+/, "", v)
  sub(/[ \t]+$/, "", v)
  if (v ~ /^".*"$/ || v ~ /^'.*'$/) v = substr(v, 2, length(v) - 2)
  return v
}
{
  sub(/\r$/, "")
  if (block != "") {
    if ($0 ~ /^[ \t]*$/) next
    if (indent($0) > blockindent) {
      line = $0
      sub(/^[ \t]+/, "", line)
      print line > block
      next
    }
    close(block)
    block = ""
  }
  if ($0 ~ /^[ \t]*#/ || $0 ~ /^[ \t]*$/) next
  if ($0 ~ /^[^ \t-]/) {
    top = $0
    sub(/:.*/, "", top)
    next
  }
  if (top == "ssh_authorized_keys" && $0 ~ /^[ \t]*- /) {
    v = $0
    sub(/^[ \t]*- /, "", v)
    print unquote(v) >> keys
    next
  }
  if (top == "ssh_keys" && $0 ~ /^[ \t]+(rsa|ecdsa|ed25519)_private:[ \t]*\|[-+]?[ \t]*$/) {
    t = $0
    sub(/^[ \t]+/, "", t)
    sub(/_private.*/, "", t)
    block = hostdir "/" t ".openssh"
    blockindent = indent($0)
    printf "" > block
  }
}
END {
  if (block != "") close(block)
  close(keys)
}
