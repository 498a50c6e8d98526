"""Apply pydicom's modality LUT and VOI (LUT or window) to each file's pixels.

Usage: pydicom_lut.py OUTDIR FILE...
For file i writes OUTDIR/i.mod.npy and OUTDIR/i.voi.npy (float64) and prints one JSON
line per file with the paths.
"""
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")
import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut


def main():
    out = sys.argv[1]
    for i, path in enumerate(sys.argv[2:]):
        ds = pydicom.dcmread(path)
        m = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
        v = apply_voi_lut(m, ds).astype(np.float64)
        mp, vp = os.path.join(out, "%d.mod.npy" % i), os.path.join(out, "%d.voi.npy" % i)
        np.save(mp, m)
        np.save(vp, v)
        print(json.dumps({"file": path, "mod": mp, "voi": vp}), flush=True)


if __name__ == "__main__":
    main()
