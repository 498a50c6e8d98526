// Package pki owns the consortium's identities: the consortium certificate
// authority, the certificates it issues to sites, admins, auditors and the
// coordinator, the inventory of every certificate issued (and revoked), the
// mutual-TLS configurations built from them, and the gRPC authorisation that
// turns a verified client certificate into an Identity with a Role.
//
// A certificate names its holder with exactly one URI SAN
// "concord://<role>/<name>", role one of site, admin, auditor, coordinator,
// name a DNS label ([a-z0-9-], 1 to 63 characters, no hyphen at either end).
// Keys are ECDSA P-256; the CA is valid 10 years, leaves 1 year by default.
//
// The CA directory holds ca.pem, ca-key.pem (mode 0600) and inventory.json.
// It belongs on the admin's machine, not the coordinator's: the coordinator
// needs ca.pem, its own kit and a copy (or the path) of inventory.json only.
//
// The caller's duties:
//
//  1. Create the CA once with InitCA; issue kits with Issue and WriteKit (or
//     `concordctl pki`, in cmd/concordctl); revoke with Revoke or RevokeSerial. These take a lock file in
//     the CA directory, so two admins cannot lose each other's updates.
//  2. On the coordinator, build the server with ServerTLS (or LoadServerTLS
//     / TLSFiles.Server) and install both Authorizer interceptors, with a
//     Policy that lists every method. Give the Authorizer an
//     InventoryWatcher so that revocations take effect without a restart.
//  3. In handlers, read the caller with IdentityFromContext; never trust a
//     name sent in a request body over the certificate's.
//
// TLS-level failures (no certificate, another CA, an expired certificate)
// end the handshake before any handler runs. grpc reports them to the client
// as codes.Unavailable with the TLS alert in the message ("bad certificate",
// "certificate required", "unknown certificate authority", "expired"), the
// same code as a coordinator that is down, so clients should not retry such
// an error forever but tell the operator to check the kit. Everything decided
// after the handshake is a status error: Unauthenticated when the certificate
// carries no usable identity, PermissionDenied when the identity is unknown,
// revoked or not allowed to call the method.
package pki
