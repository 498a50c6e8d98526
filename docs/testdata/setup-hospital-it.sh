# The consortium admin has sent the kit folder st-marys/; the hospital's
# images are in chest-xray/.
SITES=st-marys
source "$(dirname "${BASH_SOURCE[0]}")/consortium.sh"
mv hospitals/st-marys chest-xray
