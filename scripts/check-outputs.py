#!/usr/bin/env python3
"""Check what the quickstart / experiment scripts produced (used by CI).

Usage: check-outputs.py --results DIR [DIR...] --plots DIR [--points 4,8,16,32]

Result dirs: every expected point file exists, parses, has completed > 0, failed == 0 and
sane metrics (positive TTFT/TPOT medians and throughputs), a per-request CSV and a manifest.
Plot dirs: at least one PNG and one SVG; every PNG decodes (chunk CRCs, zlib stream, exact
scanline size) and every SVG is an <svg> document.
"""
import argparse, json, os, struct, sys, zlib

def fail(msg):
    print(f"check-outputs: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

def check_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path}: not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            fail(f"{path}: bad CRC in {ctype!r}")
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
        if ctype == b"IEND":
            break
    if ihdr is None:
        fail(f"{path}: no IHDR")
    w, h, depth, color = ihdr[:4]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    raw = zlib.decompress(idat)
    expected = h * (1 + (w * channels * depth + 7) // 8)
    if len(raw) != expected:
        fail(f"{path}: decoded {len(raw)} bytes, expected {expected}")
    if w < 800 or h < 400:
        fail(f"{path}: suspiciously small image {w}x{h}")
    return w, h

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", nargs="+", required=True)
    ap.add_argument("--plots", required=True)
    ap.add_argument("--points", default=None)
    a = ap.parse_args()
    for d in a.results:
        if not os.path.isdir(d):
            fail(f"missing result dir {d}")
        files = sorted(f for f in os.listdir(d) if f.startswith(("conc", "rr")) and f.endswith(".json"))
        if a.points:
            want = [f"conc{p}.json" for p in a.points.split(",")]
            missing = [w for w in want if w not in files]
            if missing:
                fail(f"{d}: missing points {missing}")
        if not files:
            fail(f"{d}: no result files")
        for f in files:
            r = json.load(open(os.path.join(d, f)))
            if r.get("completed", 0) <= 0 or r.get("failed", 0) != 0:
                fail(f"{d}/{f}: completed={r.get('completed')} failed={r.get('failed')}")
            for k in ("median_ttft_ms", "median_tpot_ms", "output_throughput", "duration"):
                v = r.get(k)
                if not isinstance(v, (int, float)) or not v > 0:
                    fail(f"{d}/{f}: {k}={v!r} is not a positive number")
            if r.get("pd_lab", {}).get("serving_backend") not in ("sim", "ray"):
                fail(f"{d}/{f}: pd_lab.serving_backend missing")
            csv = os.path.join(d, f[:-5] + ".requests.csv")
            if not os.path.isfile(csv):
                fail(f"missing {csv}")
            rows = open(csv).read().strip().splitlines()
            if len(rows) - 1 != r["completed"] + r.get("failed", 0):
                fail(f"{csv}: {len(rows) - 1} rows for {r['completed']} requests")
        if not os.path.isfile(os.path.join(d, "manifest.json")):
            fail(f"{d}: no manifest.json")
        json.load(open(os.path.join(d, "manifest.json")))
        print(f"ok: {d} ({len(files)} points)")
    pngs = [f for f in os.listdir(a.plots) if f.endswith(".png")] if os.path.isdir(a.plots) else []
    svgs = [f for f in os.listdir(a.plots) if f.endswith(".svg")] if os.path.isdir(a.plots) else []
    if not pngs or not svgs:
        fail(f"{a.plots}: expected PNG and SVG plots, found {pngs + svgs}")
    for f in pngs:
        w, h = check_png(os.path.join(a.plots, f))
        print(f"ok: {a.plots}/{f} ({w}x{h})")
    for f in svgs:
        head = open(os.path.join(a.plots, f), encoding="utf-8").read(4096)
        if "<svg" not in head:
            fail(f"{a.plots}/{f}: not an SVG document")
        print(f"ok: {a.plots}/{f}")

main()
