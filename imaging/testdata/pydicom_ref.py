"""Decode DICOM files with pydicom and write each pixel array as .npy.

Usage: pydicom_ref.py OUTDIR FILE...
Prints one JSON object per file on stdout:
  {"file": NAME, "ok": true, "npy": PATH, "shape": [...], "dtype": "uint16",
   "photometric": "...", "transfer_syntax": "..."}
or {"file": NAME, "ok": false, "error": "..."}.
The array is pydicom's stored-value pixel_array (no modality or VOI LUT),
which is what the Go reader's StoredFrames must equal.
"""
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")
import numpy as np
import pydicom


def main():
    out = sys.argv[1]
    for i, path in enumerate(sys.argv[2:]):
        rec = {"file": path}
        try:
            ds = pydicom.dcmread(path)
            arr = ds.pixel_array
            npy = os.path.join(out, "%04d.npy" % i)
            arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder('<')))
            np.save(npy, arr)
            rec.update(ok=True, npy=npy, shape=list(arr.shape), dtype=str(arr.dtype),
                       photometric=str(ds.get("PhotometricInterpretation", "")),
                       transfer_syntax=str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else "")
        except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
            rec.update(ok=False, error="%s: %s" % (type(e).__name__, e))
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
