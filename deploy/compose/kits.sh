#!/usr/bin/env bash
# Makes the consortium's CA and the kits compose.yaml mounts:
#   ./kits.sh /path/to/concordctl [DIR]     (DIR defaults to this folder)
# kits/ca           the CA (keep it off the host in a real deployment)
# kits/coordinator  coordinator.yaml, cert.pem, key.pem, ca.pem, inventory
# kits/SITE         agent.yaml, cert.pem, key.pem, ca.pem, passphrase for st-marys, elm-park, marlow-bay
# Each config gets the metrics address the compose health checks probe.
set -euo pipefail
ctl=${1:?usage: ./kits.sh CONCORDCTL [DIR]}
dir=${2:-$(cd "$(dirname "$0")" && pwd)}
kits=$dir/kits
[ ! -e "$kits/ca" ] || { echo "kits.sh: $kits/ca exists: the kits are made already" >&2; exit 1; }
mkdir -p "$kits"
"$ctl" pki init --dir "$kits/ca" --name "Concord compose consortium CA"
"$ctl" pki issue --dir "$kits/ca" --coordinator --host coordinator --out "$kits/coordinator" \
  --listen :7443 --state-dir /var/lib/concord/coordinator
# The coordinator reads the CA's inventory (issued and revoked certificates): a copy in
# its kit, so that the CA's key stays out of the container. Copy it again after pki revoke.
cp "$kits/ca/inventory.json" "$kits/coordinator/inventory.json"
sed -i 's|^inventory: .*|inventory: inventory.json|' "$kits/coordinator/coordinator.yaml"
echo 'metrics_listen: "127.0.0.1:9100"' >> "$kits/coordinator/coordinator.yaml"
for site in st-marys elm-park marlow-bay; do
  "$ctl" pki issue --dir "$kits/ca" --site "$site" --out "$kits/$site" \
    --coordinator-addr coordinator:7443 --data-dir /data --state-dir /var/lib/concord/agent
  # The passphrase that seals the site's secret keys in its state (a random one per site).
  (umask 077 && head -c 32 /dev/urandom | base64 > "$kits/$site/passphrase")
  printf 'key_passphrase_file: passphrase\nmetrics_listen: "127.0.0.1:9101"\n' >> "$kits/$site/agent.yaml"
done
# The daemons run as 65532 and read their kits through the read-only bind mounts.
chown -R 65532:65532 "$kits/coordinator" "$kits/st-marys" "$kits/elm-park" "$kits/marlow-bay" 2>/dev/null ||
  echo "kits.sh: not root: give UID 65532 read access to the kit folders" >&2
echo "kits in $kits"
