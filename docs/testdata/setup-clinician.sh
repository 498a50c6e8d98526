# A hospital (st-marys) in a consortium that published version v1 of a
# chest-lesion model, the hospital's FHIR server (a real one: Medplum's FHIR
# router on Node.js, as the serving tests use), and the new study that a
# modality sends: study.dcm. The hospital's IT has configured serving.
SITES="st-marys riverside"
source "$(dirname "${BASH_SOURCE[0]}")/consortium.sh"
export CONCORD_KEY_PASSPHRASE=demo-passphrase
for name in $SITES; do
  sed -i "s|^data:.*|data: {dir: $PWD/hospitals/$name, classes: [normal, lesion]}|" $name/agent.yaml
  site-agent run --config $name/agent.yaml > $name.log 2>&1 &
done
cat > job.yaml <<'SPEC'
name: chest-lesion
purpose: detect lesions on chest radiographs
model: {arch: cnn, channels: 1, height: 32, width: 32, classes: 2, base_width: 8}
rounds: 2
min_sites: 2
round_deadline: 10m
training: {local_epochs: 2, batch_size: 16, optimizer: adam, learning_rate: 0.003}
privacy: {secure_aggregation: mhe, threshold: 2}
pipeline: {width: 32, height: 32, channels: 1, resample: area, normalise: zscore}
SPEC
until [ "$(concordctl --config "$ADMIN_CONFIG" sites list | grep -c ' connected ')" = 2 ]; do sleep 0.3; done
concordctl --config "$ADMIN_CONFIG" jobs submit job.yaml >/dev/null
concordctl --config "$ADMIN_CONFIG" jobs watch 1 >/dev/null
mkdir -p st-marys/models
concordctl --config "$ADMIN_CONFIG" models download v1 --trust admin/ca/audit-trust.txt --out st-marys/models/v1 >/dev/null
kill %2  # st-marys's training agent; serving runs on its own
FHIR_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
node "$CONCORD_REPO/internal/testfhir/server.mjs" --port $FHIR_PORT > fhir.log 2>&1 &
until grep -q listening fhir.log; do sleep 0.2; done
export FHIR=http://127.0.0.1:$FHIR_PORT/fhir/R4
mkdir -p feedback
cat >> st-marys/agent.yaml <<YAML
feedback: {dir: $PWD/feedback}
serve:
  listen: 127.0.0.1:$SERVE_PORT
  fhir_base: $FHIR
  patient_id_system: urn:oid:1.2.840.99999.1
  models_dir: models
YAML
cp "$(find hospitals/riverside/lesion -name '*.dcm' | sort | head -1)" study.dcm
