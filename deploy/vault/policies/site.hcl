# Policy of site @NAME@ (AppRole role site-@NAME@): its own mTLS
# certificates and its own secrets, nothing else.

# Short-lived client certificates naming concord://site/@NAME@ only (the
# PKI role site-@NAME@ allows no other URI SAN).
path "concord-pki/issue/site-@NAME@" {
  capabilities = ["update"]
}

# The site's HE secret key shares and signing keys (KV v2). Create and read
# only: a stored key share is never overwritten or deleted by the agent.
path "concord-kv/data/sites/@NAME@/*" {
  capabilities = ["create", "read"]
}
