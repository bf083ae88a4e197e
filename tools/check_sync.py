"""Fail if the library, the notebooks or README.md are out of sync (run by `make test`).

1. The library is exactly what the notebooks export: run nbdev-export and fail on any difference.
2. The notebooks are clean: run nbdev-clean and fail if it changed any notebook.
3. README.md is what nbs/index.ipynb generates (tools/docs_preview.py --readme).
Files that a check rewrote are left rewritten: commit them.
"""
import difflib, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB, NBS = ROOT/'fastai_memstream', ROOT/'nbs'

def _snapshot(files): return {p: p.read_bytes() for p in files}

def _changes(before, after_files):
    after = _snapshot(after_files)
    changed = sorted({p for p in before.keys() | after.keys() if before.get(p) != after.get(p)})
    return changed, after

def main():
    bin_ = Path(sys.executable).parent
    failed = False
    libpy = lambda: [p for p in LIB.rglob('*.py') if '__pycache__' not in p.parts and 'data' not in p.relative_to(LIB).parts]
    before = _snapshot(libpy())
    subprocess.run([str(bin_/'nbdev-export')], cwd=ROOT, check=True)
    changed, after = _changes(before, libpy())
    if changed:
        failed = True
        print("The library differs from what the notebooks export (edit notebooks, not fastai_memstream/*.py; then nbdev-export):")
        for p in changed:
            a = before.get(p, b'').decode().splitlines(keepends=True); b = after.get(p, b'').decode().splitlines(keepends=True)
            sys.stdout.writelines(list(difflib.unified_diff(a, b, f'committed/{p.relative_to(ROOT)}', f'exported/{p.relative_to(ROOT)}'))[:60])
    else: print(f"library matches the notebooks ({len(after)} modules)")

    nbs = lambda: list(NBS.rglob('*.ipynb'))
    before = _snapshot(nbs())
    subprocess.run([str(bin_/'nbdev-clean')], cwd=ROOT, check=True)
    changed, after = _changes(before, nbs())
    if changed:
        failed = True
        print("nbdev-clean changed these notebooks (commit the cleaned versions):", *[str(p.relative_to(ROOT)) for p in changed], sep='\n  ')
    else: print(f"notebooks are clean ({len(after)} notebooks)")

    r = subprocess.run([sys.executable, str(ROOT/'tools'/'docs_preview.py'), '--check-readme'], cwd=ROOT)
    failed |= r.returncode != 0
    sys.exit(1 if failed else 0)

if __name__ == '__main__': main()
