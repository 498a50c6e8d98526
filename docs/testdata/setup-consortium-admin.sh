# What the walkthrough assumes: two hospitals' data folders (generated DICOM
# files, folder per class), here beside the kits.
concord-sim --sites 2 --validation-sites 0 --rounds 1 --images 60 --secure-aggregation none --out gen >/dev/null 2>&1
mkdir -p hospitals
set -- gen/federation/hospitals/train/*/
cp -r "$1" hospitals/st-marys
cp -r "$2" hospitals/riverside
