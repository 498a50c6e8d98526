# Policy of the coordinator @NAME@ (AppRole role coordinator-@NAME@).

# Its own short-lived server certificates (concord://coordinator/@NAME@ and
# the hosts the PKI role allows).
path "concord-pki/sign/coordinator-@NAME@" {
  capabilities = ["update"]
}

# Look up any certificate the consortium PKI issued, with its revocation
# time: the coordinator's inventory of Vault-issued certificates.
path "concord-pki/cert/*" {
  capabilities = ["read"]
}
