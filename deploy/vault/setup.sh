#!/bin/sh
# Sets up a Vault for Concord, and adds its identities. Run it with a Vault
# token that may manage mounts, policies and auth roles (the root token of a
# new Vault, or an operator's), VAULT_ADDR and VAULT_TOKEN set:
#
#   setup.sh init                          mounts: AppRole, PKI root + intermediate, KV v2
#   setup.sh coordinator NAME HOSTS [CIDRS]  HOSTS: comma-separated DNS names and IPs
#   setup.sh site NAME [CIDRS]
#   setup.sh admin NAME [CIDRS]
#   setup.sh role-id ROLE                   print an AppRole role id (e.g. site-st-marys)
#   setup.sh secret-id ROLE                 print a fresh single-use secret id
#   setup.sh ca                             print the consortium root CA (PEM)
#   setup.sh revoke SERIAL                  revoke a certificate (serial as Vault writes it: aa:bb:...)
#
# CIDRS (comma-separated, e.g. 10.20.0.0/16) binds both the secret id and
# the token to those client addresses. The vault binary is $VAULT (default:
# vault on PATH). Every step is idempotent except secret-id.
set -eu

V="${VAULT:-vault}"
POLICIES="$(cd "$(dirname "$0")" && pwd)/policies"
# Upper bounds; each daemon asks for its own TTL in its config (vault.ttl).
CERT_MAX_TTL="${CONCORD_CERT_MAX_TTL:-24h}"
TOKEN_PERIOD="${CONCORD_TOKEN_PERIOD:-1h}"
SECRET_ID_TTL="${CONCORD_SECRET_ID_TTL:-24h}"

die() { echo "setup.sh: $*" >&2; exit 2; }

check_name() {
  echo "$1" | grep -E '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' >/dev/null ||
    die "name '$1': use 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'"
}

check_cidrs() {
  [ -z "$1" ] || echo "$1" | grep -E '^[0-9a-fA-F:.]+/[0-9]+(,[0-9a-fA-F:.]+/[0-9]+)*$' >/dev/null ||
    die "CIDRS '$1': give comma-separated CIDR blocks such as 10.20.0.0/16"
}

mounted() { "$V" secrets list -format=json | grep "\"$1/\"" >/dev/null; }

init() {
  "$V" auth list -format=json | grep '"approle/"' >/dev/null || "$V" auth enable approle
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if ! mounted concord-pki-root; then
    "$V" secrets enable -path=concord-pki-root -max-lease-ttl=87600h pki
    "$V" write -field=certificate concord-pki-root/root/generate/internal \
      common_name="Concord consortium root CA" key_type=ec key_bits=256 ttl=87600h >/dev/null
  fi
  if ! mounted concord-pki; then
    "$V" secrets enable -path=concord-pki -max-lease-ttl=43800h pki
    "$V" write -field=csr concord-pki/intermediate/generate/internal \
      common_name="Concord consortium issuing CA" key_type=ec key_bits=256 >"$tmp/csr.pem"
    "$V" write -field=certificate concord-pki-root/root/sign-intermediate csr=@"$tmp/csr.pem" \
      format=pem_bundle ttl=43800h >"$tmp/inter.pem"
    "$V" write concord-pki/intermediate/set-signed certificate=@"$tmp/inter.pem" >/dev/null
  fi
  mounted concord-kv || "$V" secrets enable -path=concord-kv kv-v2
}

# pki_role KIND NAME [extra args...]: the PKI role KIND-NAME, allowed only
# the URI SAN concord://KIND/NAME.
pki_role() {
  kind="$1" name="$2"
  shift 2
  "$V" write "concord-pki/roles/$kind-$name" allowed_uri_sans="concord://$kind/$name" \
    require_cn=false allow_any_name=false enforce_hostnames=true key_type=ec key_bits=256 \
    max_ttl="$CERT_MAX_TTL" ttl=1h no_store=false "$@" >/dev/null
}

# approle KIND NAME CIDRS: the AppRole role KIND-NAME with policy
# concord-KIND-NAME, single-use secret ids and a periodic token.
approle() {
  kind="$1" name="$2" cidrs="$3"
  sed "s/@NAME@/$name/g" "$POLICIES/$kind.hcl" | "$V" policy write "concord-$kind-$name" - >/dev/null
  set -- token_policies="concord-$kind-$name" secret_id_num_uses=1 secret_id_ttl="$SECRET_ID_TTL" \
    token_period="$TOKEN_PERIOD" token_num_uses=0
  if [ -n "$cidrs" ]; then
    set -- "$@" secret_id_bound_cidrs="$cidrs" token_bound_cidrs="$cidrs"
  fi
  "$V" write "auth/approle/role/$kind-$name" "$@" >/dev/null
  "$V" read -field=role_id "auth/approle/role/$kind-$name/role-id"
  echo
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
init)
  init
  ;;
coordinator)
  [ $# -ge 2 ] || die "usage: setup.sh coordinator NAME HOSTS [CIDRS]"
  check_name "$1"
  check_cidrs "${3:-}"
  echo "$2" | grep -E '^[A-Za-z0-9.:-]+(,[A-Za-z0-9.:-]+)*$' >/dev/null || die "HOSTS '$2': give comma-separated DNS names and IP addresses"
  pki_role coordinator "$1" allowed_domains="$2" allow_bare_domains=true allow_subdomains=false \
    allow_localhost=true allow_ip_sans=true server_flag=true client_flag=false
  approle coordinator "$1" "${3:-}"
  ;;
site | admin)
  [ $# -ge 1 ] || die "usage: setup.sh $cmd NAME [CIDRS]"
  check_name "$1"
  check_cidrs "${2:-}"
  pki_role "$cmd" "$1" allow_localhost=false allow_ip_sans=false server_flag=false client_flag=true
  approle "$cmd" "$1" "${2:-}"
  ;;
role-id)
  [ $# -eq 1 ] || die "usage: setup.sh role-id ROLE"
  "$V" read -field=role_id "auth/approle/role/$1/role-id"
  echo
  ;;
secret-id)
  [ $# -eq 1 ] || die "usage: setup.sh secret-id ROLE"
  "$V" write -f -field=secret_id "auth/approle/role/$1/secret-id"
  echo
  ;;
revoke)
  [ $# -eq 1 ] || die "usage: setup.sh revoke SERIAL"
  "$V" write concord-pki/revoke serial_number="$1" >/dev/null
  ;;
ca)
  "$V" read -field=certificate concord-pki-root/cert/ca
  echo
  ;;
*)
  die "usage: setup.sh init | coordinator NAME HOSTS [CIDRS] | site NAME [CIDRS] | admin NAME [CIDRS] | role-id ROLE | secret-id ROLE | ca | revoke SERIAL"
  ;;
esac
