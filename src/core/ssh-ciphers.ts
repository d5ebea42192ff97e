// The cipher preference for every OpenSSH client the farm starts (bulk fetches from workers,
// libvirt's qemu+ssh): AES-GCM first, since AES-NI makes it the cheapest cipher on both ends
// (chacha20-poly1305 is OpenSSH's default, and moves bulk data slower on such hosts).
export const OPENSSH_CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr';
