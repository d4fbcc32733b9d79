#!/usr/bin/env python3
"""Download GPT-2, TinyLlama-1.1B-Chat-v1.0 and WikiText-2 (raw) from Hugging Face at the commits
pinned in datasets/manifest.json, checking every file's sha256 (and size) against the manifest,
into the layout tenpak reads (what ../shared/ has on the project's machines):

    DIR/models/gpt2/                       config.json, tokenizer.json, ..., model.safetensors
    DIR/models/TinyLlama-1.1B-Chat-v1.0/   config.json, tokenizer.json, tokenizer.model, ...
    DIR/datasets/wikitext-2-raw/           *.parquet, and wiki.test.raw derived from the test split

    python3 datasets/fetch.py DIR [--only NAME]...     download (skips files that already verify)
    python3 datasets/fetch.py --check DIR [--only NAME]...   verify a local layout, no network
    then: TENPAK_MODELS_DIR=DIR/models build/tenpak claims verify claims/published.json

Exit status: 0 every file verified; 1 a file missing, of the wrong size or with the wrong sha256
(each named on its own line); 2 bad usage or a bad manifest. A manifest file whose sha256 is null
(no published checksum was found) is UNPINNED: it is downloaded or accepted with a loud warning,
never silently; --strict makes an UNPINNED file an error. Downloads go to FILE.part and are renamed
only after their checksum matched, so no partial or unverified file is left under its name.
--base-url replaces https://huggingface.co (a mirror, or file:// for tests); --manifest another
manifest file. Nothing from ../shared/ is ever copied into the repository by this script.
"""
import argparse
import hashlib
import json
import os
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
HF = "https://huggingface.co"


def die(msg, code=2):
    print(f"fetch.py: {msg}", file=sys.stderr)
    sys.exit(code)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(path):
    try:
        with open(path) as f:
            m = json.load(f)
    except OSError as e:
        die(f"{path}: cannot read manifest ({e.strerror})")
    except json.JSONDecodeError as e:
        die(f"{path}: not valid JSON (line {e.lineno}: {e.msg})")
    entries = m.get("entries") if isinstance(m, dict) else None
    if not isinstance(entries, list) or not entries:
        die(f"{path}: manifest needs a non-empty \"entries\" list")
    for e in entries:
        for k in ("name", "kind", "repo", "revision", "dest", "files"):
            if k not in e:
                die(f"{path}: entry {e.get('name', '?')!r} lacks \"{k}\"")
        rev = e["revision"]
        if not (isinstance(rev, str) and len(rev) == 40 and all(c in "0123456789abcdef" for c in rev)):
            die(f"{path}: entry {e['name']!r}: revision must be a 40-hex commit hash, got {rev!r}")
        for f in e["files"]:
            s = f.get("sha256")
            if s is not None and not (isinstance(s, str) and len(s) == 64 and all(c in "0123456789abcdef" for c in s)):
                die(f"{path}: entry {e['name']!r}: {f.get('path')}: sha256 must be 64 hex digits or null")
            if ".." in f.get("path", "..").split("/"):
                die(f"{path}: entry {e['name']!r}: bad file path {f.get('path')!r}")
    return entries


def local_path(root, entry, f):
    return os.path.join(root, entry["dest"], os.path.basename(f["path"]))


def url_of(base, entry, f):
    prefix = "datasets/" if entry["kind"] == "dataset" else ""
    return f"{base.rstrip('/')}/{prefix}{entry['repo']}/resolve/{entry['revision']}/{f['path']}"


def verify(path, f):
    """(status, detail): OK, UNPINNED, MISSING, SIZE, SHA256"""
    if not os.path.isfile(path):
        return "MISSING", "missing"
    size = os.path.getsize(path)
    if f.get("bytes") is not None and size != f["bytes"]:
        return "SIZE", f"size {size} bytes, manifest says {f['bytes']}"
    if f.get("sha256") is None:
        return "UNPINNED", f"UNPINNED: present ({size} bytes, sha256 {sha256_of(path)}), no checksum in the manifest to verify it against"
    got = sha256_of(path)
    if got != f["sha256"]:
        return "SHA256", f"sha256 {got}, manifest says {f['sha256']}"
    return "OK", "ok"


def download(url, path, f):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = path + ".part"
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(part, "wb") as out:
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                out.write(b)
        status, detail = verify(part, f)
        if status not in ("OK", "UNPINNED"):
            os.unlink(part)
            return status, f"downloaded file rejected: {detail}"
        os.replace(part, path)
        return status, detail
    except Exception as e:  # network, HTTP, disk: one line, no partial file left
        if os.path.exists(part):
            os.unlink(part)
        return "DOWNLOAD", f"cannot download {url}: {e}"


def derive_wikitext(root, entry):
    d = entry.get("derive")
    if not d:
        return
    src = os.path.join(root, entry["dest"], d["from"])
    dst = os.path.join(root, entry["dest"], d["to"])
    try:
        import pyarrow.parquet as pq
    except ImportError:
        print(f"note: {dst} not written: pyarrow is missing (pip install pyarrow, or read {src} yourself)")
        return
    rows = pq.read_table(src, columns=["text"])["text"].to_pylist()
    text = "".join(r for r in rows if r.strip())
    tmp = dst + ".part"
    with open(tmp, "w", encoding="utf-8", newline="") as out:
        out.write(text)
    os.replace(tmp, dst)
    print(f"derived {dst}: {sum(1 for r in rows if r.strip())} non-empty rows, sha256 {sha256_of(dst)} (not pinned)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", help="target directory (download)")
    ap.add_argument("--check", metavar="DIR", help="verify DIR's files against the manifest; no network")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="only this entry (repeatable)")
    ap.add_argument("--manifest", default=os.path.join(HERE, "manifest.json"))
    ap.add_argument("--base-url", default=HF)
    ap.add_argument("--strict", action="store_true", help="an UNPINNED file is an error")
    a = ap.parse_args()
    if bool(a.dir) == bool(a.check):
        die("give either DIR (download) or --check DIR (see --help)")
    entries = load_manifest(a.manifest)
    names = {e["name"] for e in entries}
    for n in a.only:
        if n not in names:
            die(f"--only {n}: no such entry in {a.manifest} (entries: {', '.join(sorted(names))})")
    entries = [e for e in entries if not a.only or e["name"] in a.only]
    root = a.check or a.dir
    if a.check and not os.path.isdir(root):
        die(f"{root}: not a directory", 1)
    bad = unpinned = ok = 0
    for e in entries:
        for f in e["files"]:
            path = local_path(root, e, f)
            status, detail = verify(path, f)
            if a.dir and status not in ("OK", "UNPINNED"):  # an UNPINNED file present stays as it is
                status, detail = download(url_of(a.base_url, e, f), path, f)
            if status == "OK":
                ok += 1
                print(f"OK        {path}")
            elif status == "UNPINNED":
                unpinned += 1
                print(f"WARNING   {path}: {detail}", file=sys.stderr)
            else:
                bad += 1
                print(f"FAIL      {path}: {detail}", file=sys.stderr)
        if a.dir and not bad:
            derive_wikitext(root, e)
    if unpinned:
        print(f"WARNING: {unpinned} file(s) UNPINNED: no sha256 in {a.manifest}; they were not verified "
              f"(add their checksums from a trusted copy to pin them)", file=sys.stderr)
    print(f"{ok} verified, {unpinned} unpinned, {bad} failed")
    if bad or (unpinned and a.strict):
        sys.exit(1)


if __name__ == "__main__":
    main()
