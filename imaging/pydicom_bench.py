"""Time pydicom decoding files to float32 arrays (the peer in concord-bench dicom).

Usage: pydicom_bench.py REPEAT FILE...
Prints one JSON object: files decoded per pass, seconds (best pass), bytes.
With REPEAT "check", prints the JSON list of the files pydicom decodes.
"""
import json
import os
import sys
import time
import warnings

warnings.simplefilter("ignore")
import numpy as np
import pydicom


def one_pass(files):
    ok, nbytes, failed = 0, 0, 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for f in files:
        try:
            ds = pydicom.dcmread(f)
            a = ds.pixel_array.astype(np.float32)
            slope = float(ds.get("RescaleSlope", 1) or 1)
            icpt = float(ds.get("RescaleIntercept", 0) or 0)
            if slope != 1 or icpt != 0:
                a = a * slope + icpt
            ok += 1
            nbytes += os.path.getsize(f)
        except Exception:  # noqa: BLE001 - counted, as the Go side counts its failures
            failed += 1
    return ok, nbytes, failed, time.perf_counter() - t0, time.process_time() - c0


def check(files):
    ok = []
    for f in files:
        try:
            pydicom.dcmread(f).pixel_array
            ok.append(f)
        except Exception:  # noqa: BLE001 - the caller times only files both sides decode
            pass
    print(json.dumps(ok))


def main():
    if sys.argv[1] == "check":
        check(sys.argv[2:])
        return
    repeat = int(sys.argv[1])
    files = sys.argv[2:]
    best = None
    for _ in range(repeat):
        r = one_pass(files)
        if best is None or r[4] < best[4]:
            best = r
    ok, nbytes, failed, secs, cpu = best
    print(json.dumps({"files": ok, "failed": failed, "bytes": nbytes, "seconds": secs, "cpu_seconds": cpu,
                      "pydicom": pydicom.__version__, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
