"""Write DICOM files in the rarer pixel formats, built with pydicom from real files.

Usage: pydicom_formats.py SHARED OUTDIR
SHARED is the shared data folder. Prints one JSON object per written file:
  {"name": NAME, "file": PATH, "ref": PATH, "rgb": PATH or ""}
where ref is the file whose pydicom pixel_array the Go reader must reproduce from
file (the file itself, or its uncompressed source where pydicom cannot decode the
file), and rgb, for palette files, is pydicom's apply_color_lut output as .npy.

  float-*.dcm      Float / Double Float Pixel Data (parametric maps) from CT_small's
                   pixels scaled to floats, in several encodings
  rle1-*.dcm       the 1-bit DICOM SEG liver-seg.dcm in RLE Lossless, one byte per
                   pixel in each segment (pydicom's reading of 1-bit RLE), and with
                   packed bits in the segment (rle1-packed)
  palseg-*.dcm     examples_palette.dcm with its lookup tables re-encoded as
                   segmented tables (discrete, linear and indirect segments)
"""
import json
import os
import struct
import sys
import warnings

warnings.simplefilter("ignore")
import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.pixel_data_handlers.util import apply_color_lut
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, RLELossless)

PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"


def save(ds, path, ts):
    ds.file_meta.TransferSyntaxUID = ts
    ds.is_little_endian = ts != ExplicitVRBigEndian
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.save_as(path, write_like_original=False)


def float_files(shared, out):
    src = pydicom.dcmread(os.path.join(shared, "data/dicom/pydicom/CT_small.dcm"))
    px = src.pixel_array.astype(np.float64)
    frames = np.stack([px * 0.37 - 1000.25, -px / 3.0 + 1e-3])
    cases = [
        ("float-explicit-le", "FloatPixelData", np.float32, ExplicitVRLittleEndian, frames),
        ("float-implicit-le", "FloatPixelData", np.float32, ImplicitVRLittleEndian, frames[:1]),
        ("float-explicit-be", "FloatPixelData", np.float32, ExplicitVRBigEndian, frames),
        ("double-explicit-le", "DoubleFloatPixelData", np.float64, ExplicitVRLittleEndian, frames),
        ("double-implicit-le", "DoubleFloatPixelData", np.float64, ImplicitVRLittleEndian, frames[:1]),
        ("double-explicit-be", "DoubleFloatPixelData", np.float64, ExplicitVRBigEndian, frames[:1]),
    ]
    for name, kw, dt, ts, arr in cases:
        ds = pydicom.dcmread(os.path.join(shared, "data/dicom/pydicom/CT_small.dcm"))
        for k in ["PixelData", "BitsStored", "HighBit", "PixelRepresentation",
                  "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"]:
            if k in ds:
                delattr(ds, k)
        ds.SOPClassUID = PARAMETRIC_MAP
        ds.file_meta.MediaStorageSOPClassUID = PARAMETRIC_MAP
        ds.BitsAllocated = np.dtype(dt).itemsize * 8
        ds.NumberOfFrames = len(arr)
        order = "<" if ts != ExplicitVRBigEndian else ">"
        setattr(ds, kw, arr.astype(np.dtype(dt).newbyteorder(order)).tobytes())
        path = os.path.join(out, name + ".dcm")
        save(ds, path, ts)
        yield name, path, path, ""


def packbits(row):
    """PackBits as PS3.5 G.3.1 describes it: replicate runs of 3 or more."""
    outb = bytearray()
    i, n = 0, len(row)
    while i < n:
        j = i
        while j + 1 < n and row[j + 1] == row[i] and j - i < 127:
            j += 1
        if j - i >= 2:
            outb += bytes([257 - (j - i + 1), row[i]])
            i = j + 1
            continue
        k = i
        while k < n and k - i < 128 and not (k + 2 < n and row[k] == row[k + 1] == row[k + 2]):
            k += 1
        outb += bytes([k - i - 1]) + bytes(row[i:k])
        i = k
    return bytes(outb)


def rle_frame(plane, rows, cols):
    seg = b"".join(packbits(plane[r * cols:(r + 1) * cols]) for r in range(rows))
    if len(seg) % 2:
        seg += b"\x00"
    header = struct.pack("<16L", 1, 64, *([0] * 14))
    return header + seg


def rle1_files(shared, out):
    path = os.path.join(shared, "data/dicom/dcmqi/liver-seg.dcm")
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    frames = [rle_frame(bytes(f.astype(np.uint8).ravel()), ds.Rows, ds.Columns) for f in arr]
    # Packed bits in the segment, 8 pixels a byte, as some writers made it.
    packed = [np.packbits(f.astype(np.uint8).ravel(), bitorder="little").tobytes() for f in arr]
    packed = [rle_frame(p, 1, len(p)) for p in packed]
    for name, bot, frames in [("rle1-bot", True, frames), ("rle1-nobot", False, frames), ("rle1-packed", True, packed)]:
        ds = pydicom.dcmread(path)
        ds.PixelData = encapsulate(frames, has_bot=bot)
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
        dst = os.path.join(out, name + ".dcm")
        save(ds, dst, RLELossless)
        yield name, dst, path, ""


def segments(lut):
    """Encode lut as discrete and linear segments that expand back to it."""
    segs, pending, i = [], [], 0
    from pydicom.pixel_data_handlers.util import _expand_segmented_lut
    while i < len(lut):
        best = 0
        if i > 0:
            prev = lut[i - 1]
            for n in range(min(len(lut) - i, 40), 2, -1):
                got = _expand_segmented_lut((0, 1, prev, 1, n, lut[i + n - 1]), "<H")[1:]
                if got == list(lut[i:i + n]):
                    best = n
                    break
        if best:
            if pending:
                segs.append([0, len(pending)] + pending)
                pending = []
            segs.append([1, best, lut[i + best - 1]])
            i += best
        else:
            pending.append(int(lut[i]))
            i += 1
    if pending:
        segs.append([0, len(pending)] + pending)
    return segs


def with_indirect(segs, bytewords, big, n):
    """Append an indirect segment copying all but the first segment, then a linear
    segment down to 0 that makes the table at least n entries long."""
    from pydicom.pixel_data_handlers.util import _expand_segmented_lut
    assert len(segs) > 1, "an indirect copy needs a segment after the first"
    offset = len(segs[0])
    indirect = [2, len(segs) - 1]
    if bytewords and big:
        # pydicom and GDCM read the four bytes as two big endian words, low word first.
        indirect += [(offset >> 8) & 0xFF, offset & 0xFF, offset >> 24, (offset >> 16) & 0xFF]
    elif bytewords:
        indirect += [offset & 0xFF, (offset >> 8) & 0xFF, (offset >> 16) & 0xFF, offset >> 24]
    else:
        indirect += [offset & 0xFFFF, offset >> 16]
    segs = segs + [indirect]
    fmt = (">" if big else "<") + ("B" if bytewords else "H")
    have = len(_expand_segmented_lut(tuple(w for s in segs for w in s), fmt))
    return segs + [[1, max(7, n - have + 5), 0]]


def palette_files(shared, out):
    path = os.path.join(shared, "data/dicom/pydicom/examples_palette.dcm")
    colours = ["Red", "Green", "Blue"]
    cases = [
        ("palseg-16-le", 16, ExplicitVRLittleEndian, False),
        ("palseg-16-le-indirect", 16, ExplicitVRLittleEndian, True),
        ("palseg-16-be-indirect", 16, ExplicitVRBigEndian, True),
        ("palseg-16-implicit", 16, ImplicitVRLittleEndian, False),
        ("palseg-8-le-indirect", 8, ExplicitVRLittleEndian, True),
        ("palseg-8-be-indirect", 8, ExplicitVRBigEndian, True),
    ]
    for name, bits, ts, indirect in cases:
        ds = pydicom.dcmread(path)
        for c in colours:
            lut = np.frombuffer(getattr(ds, c + "PaletteColorLookupTableData"), "<u2")
            if bits == 8:
                lut = lut >> 8
            segs = segments([int(v) for v in lut])
            if indirect:
                # Copy the table's first half so that the copy is what shows.
                half = segments([int(v) for v in lut[:128]])
                segs = with_indirect(half, bits == 8, ts == ExplicitVRBigEndian, len(lut))
            words = [w for s in segs for w in s]
            if bits == 8:
                data = bytes(words)
                if len(data) % 2:
                    data += b"\x00"
            else:
                data = struct.pack(("<" if ts != ExplicitVRBigEndian else ">") + "%dH" % len(words), *words)
            desc = list(getattr(ds, c + "PaletteColorLookupTableDescriptor"))
            desc[2] = bits
            setattr(ds, c + "PaletteColorLookupTableDescriptor", desc)
            delattr(ds, c + "PaletteColorLookupTableData")
            setattr(ds, "Segmented%sPaletteColorLookupTableData" % c, data)
        dst = os.path.join(out, name + ".dcm")
        save(ds, dst, ts)
        back = pydicom.dcmread(dst)
        rgb = apply_color_lut(back.pixel_array, back).astype(np.float64)
        if bits == 16:
            rgb /= 257
        npy = os.path.join(out, name + ".rgb.npy")
        np.save(npy, rgb)
        yield name, dst, dst, npy


def main():
    shared, out = sys.argv[1], sys.argv[2]
    for gen in (float_files, rle1_files, palette_files):
        for name, path, ref, rgb in gen(shared, out):
            print(json.dumps({"name": name, "file": path, "ref": ref, "rgb": rgb}), flush=True)


if __name__ == "__main__":
    main()
