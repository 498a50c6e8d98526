# The consortium admin has sent the kit folder st-marys/; the hospital's
# images are in chest-xray/.
SITES=st-marys
source "$(dirname "${BASH_SOURCE[0]}")/consortium.sh"
mv hospitals/st-marys chest-xray
# The release archives the consortium published (two, for the upgrade).
for v in v1.0.0 v1.1.0; do
  make -s -C "$CONCORD_REPO" dist VERSION=$v DIST="$PWD" BIN="$PWD/.build-$v" >/dev/null
done
