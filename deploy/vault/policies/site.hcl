# Policy of site @NAME@ (AppRole role site-@NAME@): its own mTLS
# certificates and its own secrets, nothing else.

# Short-lived client certificates for the agent's own key (pki/sign: the
# private key never reaches Vault), naming concord://site/@NAME@ only (the
# PKI role site-@NAME@ allows no other URI SAN).
path "concord-pki/sign/site-@NAME@" {
  capabilities = ["update"]
}

# The site's HE secret key material and signing keys (KV v2). The agent
# updates a job's key material as the key setup proceeds; it never deletes
# (KV v2 keeps earlier versions).
path "concord-kv/data/sites/@NAME@/*" {
  capabilities = ["create", "read", "update"]
}
