# A consortium of two hospitals that ran one job with record-level
# differential privacy; the officer holds an auditor kit (carol/) and the
# consortium's trust file (audit-trust.txt) from the admin.
SITES="st-marys riverside"
source "$(dirname "${BASH_SOURCE[0]}")/consortium.sh"
concordctl pki issue --dir admin/ca --auditor carol --coordinator-addr 127.0.0.1:$PORT --out carol >/dev/null
cp admin/ca/audit-trust.txt audit-trust.txt
export CONCORD_KEY_PASSPHRASE=demo-passphrase
for name in $SITES; do
  sed -i "s|^data:.*|data: {dir: $PWD/hospitals/$name, classes: [normal, lesion]}|" $name/agent.yaml
  printf 'privacy:\n  budget: {epsilon: 8, delta: 1.0e-5}\n' >> $name/agent.yaml
  site-agent run --config $name/agent.yaml > $name.log 2>&1 &
done
cat > dp-job.yaml <<'SPEC'
name: chest-lesion
purpose: detect lesions on chest radiographs
legal_basis: research on pseudonymised data under each hospital's ethics approval
model: {arch: cnn, channels: 1, height: 32, width: 32, classes: 2, base_width: 8}
rounds: 2
min_sites: 2
round_deadline: 10m
training: {local_epochs: 1, batch_size: 16, optimizer: sgd, learning_rate: 0.05}
privacy: {secure_aggregation: mhe, threshold: 2, level: record, example_clip: 1.0, delta: 1.0e-5, epsilon: 4}
pipeline: {width: 32, height: 32, channels: 1, resample: area, normalise: zscore}
SPEC
until [ "$(concordctl --config "$ADMIN_CONFIG" sites list | grep -c ' connected ')" = 2 ]; do sleep 0.3; done
concordctl --config "$ADMIN_CONFIG" jobs submit dp-job.yaml >/dev/null
concordctl --config "$ADMIN_CONFIG" jobs watch 1 >/dev/null
concordctl --config "$ADMIN_CONFIG" jobs status 1 | grep 'state: completed' >/dev/null
