# Policy of the consortium admin @NAME@ (AppRole role admin-@NAME@):
# short-lived client certificates naming concord://admin/@NAME@ only.
path "concord-pki/sign/admin-@NAME@" {
  capabilities = ["update"]
}
