"""Cache trust for the LM token store (issue 10): every damaged, edited, hostile or stale store is a named error or identical
data; builders rebuild what they find damaged; workers die with their parent; a full disk is a `CacheWriteError`."""
import os, sys, json, time, errno, random, shutil, signal, subprocess, textwrap, warnings
from pathlib import Path
import numpy as np
import pytest
import fastai_memstream.core as core
CacheWriteError = getattr(core, 'CacheWriteError', type('NoCacheWriteError', (Exception,), {}))   # lets this file run (and fail) on older code
from fastai_memstream.core import MemstreamError, CacheCorruptError, CacheFormatError, MANIFEST
from fastai_memstream.store import DiskLMDataset, make_tokenizer

TEXTS = [f"The cat number {i} sat on the mat , and the dog number {i % 7} did not ." for i in range(40)]
SAMPLE = 'The cat sat on the dog'

def _build(path, **kw):
    from fastai.text.core import BaseTokenizer
    return DiskLMDataset.from_texts(TEXTS, path, tok=BaseTokenizer(), min_freq=1, n_workers=0, progress=False, **kw)

def _snapshot(ds)->dict:
    "Everything a reader gets from a store"
    tk = ds.tokenizer()(SAMPLE) if 'tokenizer' in ds.meta['params'] else None
    return dict(data=np.array(ds.data).tolist(), offsets=np.array(ds.doc_offsets).tolist(), vocab=ds.vocab,
                docs=[ds.doc(i).tolist() for i in range(ds.n_docs)], n=(ds.n_docs, len(ds)), tok=tk)

@pytest.fixture(scope='module')
def base(tmp_path_factory):
    p = tmp_path_factory.mktemp('trust')/'base'
    ds = _build(p)
    return p, _snapshot(ds)

def _outcome(folder, ref)->str:
    "'named' (a MemstreamError), 'identical' (same data, offsets, vocabulary); anything else fails the test"
    getattr(core, '_VERIFIED', set()).clear()   # a fresh copy may reuse the inode numbers of an earlier one
    try: snap = _snapshot(DiskLMDataset(folder))
    except MemstreamError: return 'named'
    if {k: v for k,v in snap.items() if k != 'tok'} == {k: v for k,v in ref.items() if k != 'tok'}: return 'identical'
    raise AssertionError(f"{folder}: served other data without an error")

FILES = ['tokens.bin', 'doc_offsets.bin', 'vocab.json', MANIFEST]

def _mutations(base_dir:Path, rng):
    "`(description, mutate(folder))` for every fault of every file kind"
    for fn in FILES:
        size = (base_dir/fn).stat().st_size
        def trunc(d, fn=fn, n=size//2): (d/fn).write_bytes((d/fn).read_bytes()[:n])
        def empty(d, fn=fn): (d/fn).write_bytes(b'')
        def grow(d, fn=fn): (d/fn).write_bytes((d/fn).read_bytes() + b'\0\0')
        def delete(d, fn=fn): (d/fn).unlink()
        def link(d, fn=fn):
            other = d.parent/f'{d.name}-{fn}'; shutil.copy(d/fn, other); (d/fn).unlink(); (d/fn).symlink_to(other)
        yield from [(f'{fn}: truncate', trunc), (f'{fn}: empty', empty), (f'{fn}: grow', grow), (f'{fn}: delete', delete),
                    (f'{fn}: symlink to an identical copy', link)]
        for pos in rng.sample(range(size), min(8, size)):
            for bit in (0x01, 0x80):
                def flip(d, fn=fn, pos=pos, bit=bit):
                    b = bytearray((d/fn).read_bytes()); b[pos] ^= bit; (d/fn).write_bytes(bytes(b))
                yield f'{fn}: flip bit {bit:#x} of byte {pos}', flip

EDITS = [('delete', None), ('null', None), ('-1', -1), ('str', 'x'), ('huge', 10**15), ('list', []), ('dict', {}), ('true', True),
         ('outside', '/etc/hostname'), ('parent', '../base/tokens.bin'), ('float', 1.5)]

def _leaves(o, path=()):
    "Paths of every value of a JSON object (containers too)"
    if path: yield path
    if isinstance(o, dict):
        for k,v in o.items(): yield from _leaves(v, path+(k,))
    elif isinstance(o, list):
        for i,v in enumerate(o): yield from _leaves(v, path+(i,))

def _manifest_edits(m):
    for path in _leaves(m):
        for name,val in EDITS:
            def edit(d, path=path, name=name, val=val):
                mm = json.loads((d/MANIFEST).read_text())
                o = mm
                for k in path[:-1]: o = o[k]
                if name == 'delete':
                    if isinstance(o, list): del o[path[-1]]
                    else: o.pop(path[-1])
                else: o[path[-1]] = val
                (d/MANIFEST).write_text(json.dumps(mm))
            yield f"manifest {'.'.join(map(str, path))}: {name}", edit

def test_fault_injection(base, tmp_path):
    "Every fault of every file kind, and every edit of every manifest field: a named error or identical data, never other data"
    base_dir, ref = base
    rng = random.Random(10)
    counts = dict(attempts=0, named=0, identical=0)
    faults = [*_mutations(base_dir, rng), *_manifest_edits(json.loads((base_dir/MANIFEST).read_text()))]
    t0 = time.time()
    for i,(desc,mutate) in enumerate(faults):
        d = tmp_path/f'c{i}'
        shutil.copytree(base_dir, d)
        mutate(d)
        try: res = _outcome(d, ref)
        except AssertionError as e: raise AssertionError(f"{desc}: {e}") from e
        except Exception as e: raise AssertionError(f"{desc}: raw {type(e).__name__}: {e}") from e
        counts['attempts'] += 1; counts[res] += 1
        shutil.rmtree(d)
    print(f"\nLM store fault injection: {counts} in {time.time()-t0:.1f}s")
    assert counts['attempts'] == counts['named'] + counts['identical']
    assert counts['named'] > 100

def test_damaged_store_is_rebuilt_by_its_builder(base, tmp_path):
    "A builder that finds its store damaged says so and rebuilds it (one case per file kind and fault)"
    base_dir, ref = base
    rng = random.Random(11)
    kinds,refused = {},[]
    for desc,mutate in _mutations(base_dir, rng): kinds.setdefault(desc.split(' ')[0] + desc.split(':')[1].split()[0], (desc, mutate))
    for i,(desc,mutate) in enumerate(kinds.values()):
        d = tmp_path/f'r{i}'
        shutil.copytree(base_dir, d)
        mutate(d)
        getattr(core, '_VERIFIED', set()).clear()
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter('always')
            try: ds = _build(d)
            except CacheFormatError as e:   # a manifest too damaged to tell whose folder this is: refused, unless forced
                assert desc.startswith(MANIFEST) and 'force_rebuild=True' in str(e), (desc, e)
                refused.append(desc)
                ds = _build(d, force_rebuild=True)
        assert ds.built or desc.startswith(MANIFEST), desc   # a flip in, say, the creation date leaves a valid store: reused
        assert any('damaged' in str(w.message) for w in ws) or desc.startswith(MANIFEST), desc
        try: snap = _snapshot(ds)
        except MemstreamError: assert desc.startswith(MANIFEST), desc; continue   # e.g. a flip in a rule's name: a named error when used
        assert snap == ref, desc
    print(f"\nrebuilt {len(kinds)} damaged stores; refused without force_rebuild: {refused}")

def test_hostile_tokenizer_rule_runs_nothing(base, tmp_path):
    "The attack of the issue: a manifest whose rules are `partial(re.sub, ...)` then `os.system`"
    base_dir, _ = base
    d = tmp_path/'hostile'; shutil.copytree(base_dir, d)
    pwned = tmp_path/'PWNED'
    m = json.loads((d/MANIFEST).read_text())
    m['params']['tokenizer']['rules'] = [{"partial": "re.sub", "args": ["(?s)\\A.*\\Z", f"touch {pwned}"], "keywords": {}}, "os.system"]
    (d/MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CacheFormatError, match='nothing was imported or run'): DiskLMDataset(d).tokenizer()('some text')
    with pytest.raises(CacheFormatError): make_tokenizer(json.loads((d/MANIFEST).read_text()))
    with pytest.raises(CacheFormatError): DiskLMDataset(d).verify()
    r = subprocess.run([sys.executable, '-m', 'fastai_memstream', 'verify', str(d)], capture_output=True, text=True)
    assert r.returncode == 1 and 're.sub' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not pwned.exists()
    m['params']['tokenizer']['rules'] = []
    m['params']['tokenizer']['tok'] = {'cls': 'os.system', 'split_char': f'touch {pwned}'}
    (d/MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CacheFormatError, match="tokenizer class 'os.system'"): DiskLMDataset(d).tokenizer()('x')
    assert not pwned.exists()

def test_cli_verify_lm_store(base, tmp_path):
    "`verify` exits 1 with a one-line reason, never a traceback, for a truncated manifest, a flipped byte, bad offsets"
    base_dir, _ = base
    d = tmp_path/'v'; shutil.copytree(base_dir, d)
    run = lambda: subprocess.run([sys.executable, '-m', 'fastai_memstream', 'verify', str(d)], capture_output=True, text=True)
    r = run(); assert r.returncode == 0, r.stderr
    good = (d/MANIFEST).read_text()
    (d/MANIFEST).write_text(good[:len(good)//2])
    r = run(); assert r.returncode == 1 and 'not valid JSON' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    (d/MANIFEST).write_text(good)
    o = np.fromfile(d/'doc_offsets.bin', dtype=np.int64); o[[3, 4]] = o[[4, 3]]; o.tofile(d/'doc_offsets.bin')
    m = json.loads(good); m['arrays']['doc_offsets']['xxh3'] = core._xxh3_file(d/'doc_offsets.bin'); (d/MANIFEST).write_text(json.dumps(m))
    r = run(); assert r.returncode == 1 and 'doc_offsets.bin is not' in r.stderr, r.stderr   # a consistent checksum, bad offsets

def test_settings_change_warns(tmp_path):
    "Issue 11: rebuilding a folder that holds a store built with other settings (min_freq) warns, naming both"
    from fastai.text.core import BaseTokenizer
    kw = dict(tok=BaseTokenizer(), n_workers=0, progress=False)
    DiskLMDataset.from_texts(TEXTS, tmp_path/'s', min_freq=2, **kw)
    with pytest.warns(UserWarning, match=r'other settings \(.*min_freq=2.*built with \(.*min_freq=3'):
        DiskLMDataset.from_texts(TEXTS, tmp_path/'s', min_freq=3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        DiskLMDataset.from_texts(TEXTS, tmp_path/'s', min_freq=3, **kw)     # reuse: no warning
        DiskLMDataset.from_texts(TEXTS[:5], tmp_path/'s', min_freq=3, **kw)  # other data, same settings: no warning

def test_symlinked_cache_folder_is_built_through(tmp_path):
    "force_rebuild through a linked cache folder builds into the link's target and keeps the link"
    real = tmp_path/'disk2'/'store'
    _build(real)
    link = tmp_path/'store'; link.symlink_to(real, target_is_directory=True)
    ds = DiskLMDataset.from_token_docs([[1, 2, 3]], link, vocab_size=5, force_rebuild=True, progress=False)
    assert ds.built and link.is_symlink() and link.resolve() == real.resolve()
    assert DiskLMDataset(real).n_docs == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.store.')]   # nothing beside the link

KILLED_REBUILD = textwrap.dedent("""
    import sys, time
    from fastai_memstream.store import DiskLMDataset
    def docs():
        for i in range(1000):
            if i == 500: print('writing', flush=True); time.sleep(60)
            yield [i % 50] * 2000
    DiskLMDataset.from_token_docs(docs(), sys.argv[1], vocab_size=50, force_rebuild=True, progress=False, chunk_tokens=1000)
""")

def test_killed_force_rebuild_copy_is_removed_on_reuse(tmp_path):
    "A force_rebuild killed midway leaves a .X.tmp-* copy; the next call that reuses the store removes it"
    target = tmp_path/'lm'
    docs = [[1, 2, 3], [4, 5]]
    DiskLMDataset.from_token_docs(docs, target, vocab_size=50, progress=False)
    p = subprocess.Popen([sys.executable, '-c', KILLED_REBUILD, str(target)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'writing'
    p.kill(); p.wait()
    left = [q for q in tmp_path.iterdir() if q.name.startswith('.lm.tmp-')]
    assert left and sum(f.stat().st_size for f in left[0].iterdir()) > 100_000
    ds = DiskLMDataset.from_token_docs(docs, target, vocab_size=50, progress=False)
    assert not ds.built and ds.n_docs == 2
    assert not [q for q in tmp_path.iterdir() if q.name.startswith('.lm.tmp-')]

ORPHANS = textwrap.dedent("""
    import sys, time
    from fastai.text.core import BaseTokenizer
    from fastai_memstream.store import DiskLMDataset
    def texts():
        for i in range(10_000):
            if i == 40: print('idle', flush=True); time.sleep(120)   # the workers have nothing to do: they wait on the pipe
            yield f'text number {i} about cats'
    DiskLMDataset.from_texts(texts(), sys.argv[1], tok=BaseTokenizer(), n_workers=2, chunk_size=5, progress=False)
""")

def _children(pid:int)->list:
    res = []
    for p in Path('/proc').iterdir():
        if p.name.isdigit():
            try: st = (p/'stat').read_text()
            except OSError: continue
            if int(st.rsplit(')', 1)[1].split()[1]) == pid: res.append(int(p.name))
    return res

def _alive(pid:int)->bool:
    try: return (Path('/proc')/str(pid)/'stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError: return False

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc; PR_SET_PDEATHSIG is Linux-only')
def test_tokenizer_workers_die_with_their_parent(tmp_path):
    "kill -9 of a from_texts(n_workers=2) build: no tokenizer worker survives it (they would wait on their pipe for ever)"
    p = subprocess.Popen([sys.executable, '-c', ORPHANS, str(tmp_path/'lm')], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'idle'
        for _ in range(100):
            kids = _children(p.pid)
            if len(kids) >= 2: break
            time.sleep(0.05)
        assert len(kids) >= 2, kids
        time.sleep(0.3)
        os.kill(p.pid, signal.SIGKILL); p.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(map(_alive, kids)): time.sleep(0.05)
        survivors = [k for k in kids if _alive(k)]
    finally:
        for k in _children(p.pid) + locals().get('kids', []):
            try: os.kill(k, signal.SIGKILL)
            except OSError: pass
    assert not survivors, f"workers {survivors} survived their parent"

def _tmpfs(path:Path, size:str='2m'):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)], capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()

def test_full_disk_is_a_cache_write_error(tmp_path):
    "A store that does not fit its disk (a 2 MB tmpfs): CacheWriteError naming the folder and the fix; no partial folder left"
    mnt = tmp_path/'small'
    ok,why = _tmpfs(mnt)
    if not ok: pytest.skip(f"cannot mount a tmpfs (needs root): {why}")
    try:
        docs = [np.arange(100_000) % 60_000 for _ in range(20)]   # 4 MB of uint16 tokens
        with pytest.raises(CacheWriteError) as ei: DiskLMDataset.from_token_docs(docs, mnt/'lm', vocab_size=60_000, progress=False)
        e = ei.value
        assert isinstance(e, OSError) and e.errno == errno.ENOSPC
        msg = str(e)
        for s in (str(mnt/'lm'), 'No space left on device', 'bytes it had written', 'partial folder was removed', 'another disk'): assert s in msg, msg
        assert [q.name for q in mnt.iterdir() if not q.name.endswith('.lock')] == []
        DiskLMDataset.from_token_docs(docs[:1], mnt/'lm', vocab_size=60_000, progress=False)   # space is back: a small store fits
    finally: subprocess.run(['umount', str(mnt)], capture_output=True)

def test_full_disk_text_splits(tmp_path, monkeypatch):
    "The splits builder's scratch folder: a full disk while writing is a CacheWriteError, the scratch folder removed"
    real = core.ArrayWriter.write
    def full(self, a):
        if self.n + np.size(a) > 200: raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.fn))
        return real(self, a)
    monkeypatch.setattr(core.ArrayWriter, 'write', full)
    from fastai.text.core import BaseTokenizer
    with pytest.raises(CacheWriteError, match='partial folder was removed'):
        DiskLMDataset.from_texts(TEXTS*20, tmp_path/'sp', tok=BaseTokenizer(), min_freq=1, n_workers=0, progress=False, chunk_size=20,
                                 splits={'train': range(0, 800, 2), 'valid': range(1, 800, 2)})
    assert [q.name for q in (tmp_path/'sp').iterdir() if not q.name.endswith('.lock')] == []

def test_settings_change_warns_for_splits(tmp_path):
    "The same for stores built with `splits=`: each replaced split warns"
    from fastai.text.core import BaseTokenizer
    kw = dict(tok=BaseTokenizer(), n_workers=0, progress=False, splits={'train': range(0, 40, 2), 'valid': range(1, 40, 2)})
    DiskLMDataset.from_texts(TEXTS, tmp_path/'s', min_freq=2, **kw)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        DiskLMDataset.from_texts(TEXTS, tmp_path/'s', min_freq=3, **kw)
    msgs = [str(w.message) for w in ws if 'other settings' in str(w.message)]
    assert len(msgs) == 2 and all('min_freq=2' in m and 'min_freq=3' in m for m in msgs), msgs
    assert not [m for m in msgs if 'corpus_' in m]
