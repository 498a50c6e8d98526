# The consortium's Vault (a real one, in dev mode: in memory, unsealed, a
# root token), the operator's VAULT_ADDR and VAULT_TOKEN, Concord's deploy/
# folder as shipped, and one hospital's data folder.
: "${CONCORD_VAULT:?}"
VAULT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export VAULT_ADDR=http://127.0.0.1:$VAULT_PORT VAULT_TOKEN=root-guide-$RANDOM$RANDOM
HOME=$PWD "$CONCORD_VAULT" server -dev -dev-root-token-id=$VAULT_TOKEN -dev-listen-address=127.0.0.1:$VAULT_PORT -log-level=warn > vault.log 2>&1 &
until curl -sf $VAULT_ADDR/v1/sys/health >/dev/null; do sleep 0.2; done
export VAULT="$CONCORD_VAULT"
ln -s "$CONCORD_REPO/deploy" deploy
concord-sim --sites 1 --validation-sites 0 --rounds 1 --images 40 --secure-aggregation none --out gen >/dev/null 2>&1
mv gen/federation/hospitals/train/*/ st-marys-images
