// Package vaultauth connects Concord's daemons and admins to HashiCorp
// Vault: AppRole login with token renewal, short-lived mutual-TLS
// certificates from Vault's PKI secrets engine, the coordinator's view of
// which Vault-issued certificates are valid, and a KV v2 store for a site's
// secret key material. It is the only package of ours that imports the
// Vault API client; deploy/vault holds the policies and the setup script
// that create the mounts and roles it expects.
//
// Design choices:
//
//   - Login is AppRole only: a role_id (not secret) and a secret_id read
//     from a file. The roles deploy/vault creates make secret ids single-use
//     (secret_id_num_uses=1) and, where given, bound to CIDRs, so a leaked
//     secret id that was already used is worth nothing. The token is
//     periodic and renewed by a LifetimeWatcher; a daemon therefore logs in
//     once per start, and each start needs a fresh secret id.
//   - Certificates are served through tls.Config.GetCertificate and
//     GetClientCertificate, so a renewed certificate is used by the next
//     handshake while connections already open carry on. Certs renews at
//     2/3 of a certificate's lifetime and keeps retrying until it expires.
//     Because a connection keeps the certificate it was opened with, the
//     coordinator must close connections gracefully (gRPC MaxConnectionAge)
//     well inside the remaining third, so that clients reconnect with their
//     current certificate before the old one expires; MaxConnectionAge
//     returns the bound.
//   - Trust roots are the self-signed certificates of the issuing CA's
//     chain as Vault returns it; the leaf is presented with the
//     intermediates.
//   - The coordinator looks a Vault-issued serial up in Vault itself
//     (pki/cert/<serial>), so `vault write pki/revoke` takes effect within
//     Inventory's refresh interval, and reports each serial it sees for the
//     first time (the coordinator records it in the audit log). Inventory
//     is a coordinator.RotatingInventory: a long stream opened with a
//     certificate that has since expired stays open while its holder has
//     a newer valid one.
//   - Certificates are signed from a request (pki/sign) for one key made
//     per process and kept in memory: Vault never holds the private key, and
//     a site's privacy receipts, signed with it, verify against whichever of
//     its certificates the upload's connection was opened with.
//   - Secrets in KV v2 are stored base64-encoded under one field ("b64");
//     each write is a new version, so KV v2 keeps the history.
//   - Every response body from Vault is bounded (maxResponseBytes).
package vaultauth
