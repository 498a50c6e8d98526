# A consortium the reader's guide joins: the CA, a running coordinator, an
# admin kit, and the kits of the hospitals named in $SITES, each with a
# folder of generated DICOM files (folder per class) in hospitals/NAME.
# The coordinator's log is coordinator.log.
: "${PORT:?}"
SITES=${SITES:-st-marys}
concord-sim --sites 3 --validation-sites 0 --rounds 1 --images 60 --secure-aggregation none --out gen >/dev/null 2>&1
mkdir -p hospitals admin
read -r -a names <<< "$SITES"
dirs=(gen/federation/hospitals/train/*/)
for i in "${!names[@]}"; do
  cp -r "${dirs[$i]}" "hospitals/${names[$i]}"
done
(
  cd admin
  concordctl pki init --dir ca >/dev/null
  concordctl pki issue --dir ca --coordinator --host 127.0.0.1 --listen 127.0.0.1:$PORT --state-dir state --out coordinator >/dev/null
  concordctl pki issue --dir ca --admin alice --coordinator-addr 127.0.0.1:$PORT --out alice >/dev/null
  for name in $SITES; do
    concordctl pki issue --dir ca --site $name --coordinator-addr 127.0.0.1:$PORT --state-dir state --out ../$name >/dev/null
  done
)
coordinator --config admin/coordinator/coordinator.yaml > coordinator.log 2>&1 &
export ADMIN_CONFIG=$PWD/admin/alice/concordctl.yaml
until concordctl --config "$ADMIN_CONFIG" version >/dev/null 2>&1; do sleep 0.3; done
