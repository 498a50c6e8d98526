"""Expand segmented palette lookup table data with pydicom.

Reads a JSON list of {"words": [...], "fmt": "<H"} from stdin (fmt as pydicom's
_expand_segmented_lut takes it: "<" or ">" and "B" for 8-bit or "H" for 16-bit
entries) and prints a JSON list of {"lut": [...]} or {"error": "..."}.
"""
import json
import sys
import warnings

warnings.simplefilter("ignore")
from pydicom.pixel_data_handlers.util import _expand_segmented_lut


def main():
    out = []
    for case in json.load(sys.stdin):
        try:
            out.append({"lut": [int(v) for v in _expand_segmented_lut(tuple(case["words"]), case["fmt"])]})
        except Exception as e:  # noqa: BLE001 - every failure is a result to compare
            out.append({"error": "%s: %s" % (type(e).__name__, str(e)[:80])})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
