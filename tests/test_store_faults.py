"LM store under faults, with real processes: a build killed midway, two processes building the same store, workers reading a pickled store"
import os, sys, json, time, signal, subprocess, textwrap, pickle
from pathlib import Path
import numpy as np, pytest
from fastai_memstream.core import CacheIncompleteError, CacheCorruptError
from fastai_memstream.store import DiskLMDataset, wikitext_df

def _leftovers(target:Path): return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f'.{target.name}.') and p.is_dir())

KILLED = textwrap.dedent("""
    import sys, time, numpy as np
    from fastai_memstream.store import DiskLMDataset, wikitext_df
    target, kind = sys.argv[1], sys.argv[2]
    def docs():
        for i in range(40):
            if i == 20: print('midway', flush=True); time.sleep(600)
            yield np.arange(1000) % 500
    def texts():
        for i,t in enumerate(wikitext_df(n_articles=12).text):
            if i == 8: print('midway', flush=True); time.sleep(600)
            yield t
    if kind == 'ids': DiskLMDataset.from_token_docs(docs(), target, vocab_size=500, chunk_tokens=2000, progress=False, source_id='k')
    else: DiskLMDataset.from_texts(texts(), target, n_workers=2, chunk_size=2, progress=False, source_id='k')
""")

@pytest.mark.parametrize('kind', ['ids', 'texts'])
def test_killed_build_leaves_no_store(tmp_path, kind):
    target = tmp_path/'store'
    p = subprocess.Popen([sys.executable, '-c', KILLED, str(target), kind], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try: assert p.stdout.readline().strip() == 'midway'
    finally:
        os.killpg(p.pid, signal.SIGKILL)   # the builder and its tokenizing workers, mid-build
        p.wait()
    assert not target.exists()
    left = _leftovers(target)
    assert len(left) == 1 and '.tmp-' in left[0]
    assert any((target.parent/left[0]).iterdir())   # it had written part of the tokens
    with pytest.raises(CacheIncompleteError, match='interrupted build left'): DiskLMDataset(target)
    ds = DiskLMDataset.from_token_docs([np.arange(10)], target, source_id='k', progress=False)
    assert ds.built and ds.n_docs == 1 and _leftovers(target) == []

CONCURRENT = textwrap.dedent("""
    import sys, time, json, numpy as np
    from fastai_memstream.store import DiskLMDataset
    target, start = sys.argv[1], float(sys.argv[2])
    class SlowDocs:
        "Documents that take about a second to read; named for the fingerprint"
        def __len__(self): return 50
        def __iter__(self):
            for i in range(50): time.sleep(0.02); yield (np.arange(2000) * (i+1)) % 1000
        def __fingerprint__(self): return 'slow-docs-v1'
    while time.time() < start: time.sleep(0.005)
    t0 = time.time()
    ds = DiskLMDataset.from_token_docs(SlowDocs(), target, vocab_size=1000, chunk_tokens=5000, progress=False)
    print(json.dumps(dict(built=ds.built, created=ds.meta['created'], sha=ds.meta['arrays']['tokens']['xxh3'],
                          head=ds[:50].tolist(), n=len(ds), secs=time.time()-t0)))
""")

def test_two_processes_build_one_store(tmp_path):
    target = tmp_path/'store'
    start = time.time() + 4
    ps = [subprocess.Popen([sys.executable, '-c', CONCURRENT, str(target), str(start)], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=180)[0].strip().splitlines()[-1]) for p in ps]
    assert [p.returncode for p in ps] == [0, 0]
    assert sorted(o['built'] for o in outs) == [False, True]
    assert outs[0]['created'] == outs[1]['created'] and outs[0]['sha'] == outs[1]['sha'] and outs[0]['head'] == outs[1]['head']
    waited = next(o for o in outs if not o['built'])
    assert waited['secs'] > 0.3, waited   # it did wait for the other's build (about a second) rather than find it done
    ds = DiskLMDataset(target).verify()
    assert len(ds) == 50*2000 and ds.n_docs == 50
    np.testing.assert_array_equal(ds.doc(3), (np.arange(2000)*4) % 1000)
    assert _leftovers(target) == []

def _read_doc(args):
    ds,i = args
    return ds._data is None, ds.doc(i).tolist()

@pytest.mark.parametrize('method', ['fork', 'spawn'])
def test_workers_get_the_path_only(tmp_path, method):
    import multiprocessing as mp
    ds = DiskLMDataset.from_token_docs([np.arange(100_000) % 7 + i for i in range(4)], tmp_path/'s', vocab_size=20, progress=False)
    ds[:10]   # map it in the parent
    assert len(pickle.dumps(ds)) < 300
    with mp.get_context(method).Pool(2) as pool: res = pool.map(_read_doc, [(ds, i) for i in range(4)])
    for i,(lazy,d) in enumerate(res):
        assert lazy   # arrived unmapped: only the path travelled
        assert d == ds.doc(i).tolist()

def test_truncated_tokens_detected_and_rebuilt(tmp_path):
    ds = DiskLMDataset.from_texts(wikitext_df(n_articles=2).text.tolist(), tmp_path/'s', n_workers=0, progress=False)
    with open(ds.path/'tokens.bin', 'r+b') as f: f.truncate(ds.meta['arrays']['tokens']['nbytes'] - 2)
    with pytest.raises(CacheCorruptError, match='truncated'): DiskLMDataset(ds.path)
    again = DiskLMDataset.from_texts(wikitext_df(n_articles=2).text.tolist(), tmp_path/'s', n_workers=0, progress=False)
    assert again.built and again.verify().total_tokens == ds.total_tokens

KILLED_SPLITS = textwrap.dedent("""
    import sys, time
    import fastai_memstream.store as S, fastai_memstream.text as T   # the text builders copy splits with `T._copy_docs`
    from fastai.text.core import BaseTokenizer, lowercase
    target, when = sys.argv[1], sys.argv[2]
    texts = S.wikitext_df(n_articles=12).text.tolist()
    def gen():
        for i,t in enumerate(texts):
            if when == 'tokenizing' and i == 8: print('midway', flush=True); time.sleep(600)
            yield t
    orig_copy, orig_add, calls = T._copy_docs, S._TokenWriter.add_many, []
    def add_many(self, *a, **k):   # in the copy of the second split, after its first chunk is written: stop there
        orig_add(self, *a, **k)
        if len(calls) == 2: self.flush(); print('midway', flush=True); time.sleep(600)
    def copy_docs(*a, **k):
        calls.append(1)
        if len(calls) == 2: S._TokenWriter.add_many = add_many; k['chunk_tokens'] = 200
        return orig_copy(*a, **k)
    if when == 'copying': T._copy_docs = copy_docs
    S.DiskLMDataset.from_texts(gen(), target, source_id='k', tok=BaseTokenizer(), rules=[lowercase], n_workers=0, progress=False,
                               splits={'train': range(9), 'valid': range(9, 12)})
""")

@pytest.mark.parametrize('when', ['tokenizing', 'copying'])
def test_killed_split_build_leaves_no_store(tmp_path, when):
    "A `splits=` build killed while tokenizing, or while storing the second split, commits no store that is not whole; the next call rebuilds"
    from fastai.text.core import BaseTokenizer, lowercase
    target = tmp_path/'lm'
    p = subprocess.Popen([sys.executable, '-c', KILLED_SPLITS, str(target), when], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try: assert p.stdout.readline().strip() == 'midway'
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    left = sorted(q.name for q in target.iterdir() if '.tmp-' in q.name)
    if when == 'tokenizing':
        assert [n.split('.tmp-')[0] for n in left] == ['.all'] and not (target/'train').exists()
    else:
        assert [n.split('.tmp-')[0] for n in left] == ['.all', '.valid']
        assert any(next(target.glob('.valid.tmp-*')).iterdir())   # it had written part of the second split
        DiskLMDataset(target/'train')                             # the first split was complete: committed on its own
    with pytest.raises(CacheIncompleteError, match='does not exist' if when == 'tokenizing' else 'interrupted build left'):
        DiskLMDataset(target/'valid')
    texts = wikitext_df(n_articles=12).text.tolist()
    kw = dict(source_id='k', tok=BaseTokenizer(), rules=[lowercase], n_workers=0, progress=False, splits={'train': range(9), 'valid': range(9, 12)})
    sp = DiskLMDataset.from_texts(texts, target, **kw)
    assert all(s.built for s in sp.values())
    assert (sp['train'].n_docs, sp['valid'].n_docs) == (9, 3) and sp['train'].vocab == sp['valid'].vocab
    for s in sp.values(): s.verify()
    assert sorted(q.name for q in target.iterdir() if not q.name.endswith('.lock')) == ['train', 'valid']
    whole = DiskLMDataset.from_texts(texts, tmp_path/'whole', **{**kw, 'splits': None})
    np.testing.assert_array_equal(np.concatenate([sp['train'].data, sp['valid'].data]), whole.data)

CONCURRENT_SPLITS = textwrap.dedent("""
    import sys, time, json
    from pathlib import Path
    from fastai.text.core import BaseTokenizer, lowercase
    from fastai_memstream.store import DiskLMDataset, wikitext_df
    target, go = sys.argv[1], Path(sys.argv[2])
    def slow_lowercase(t, **kw): time.sleep(0.05); return lowercase(t, **kw)   # about a second for 20 texts
    texts = wikitext_df(n_articles=20).text.tolist()
    print('ready', flush=True)
    while not go.exists(): time.sleep(0.005)
    t0 = time.time()
    sp = DiskLMDataset.from_texts(texts, target, tok=BaseTokenizer(), rules=[slow_lowercase], n_workers=0, progress=False,
                                  splits={'train': range(0, 20, 2), 'valid': range(1, 20, 2)})
    print(json.dumps({n: dict(built=s.built, created=s.meta['created'], sha=s.meta['arrays']['tokens']['xxh3'], n=len(s))
                      for n,s in sp.items()} | {'secs': time.time()-t0}))
""")

def test_two_processes_build_one_split_store(tmp_path):
    "Two processes asking for the same `splits=` stores at once: one tokenizes and stores both splits, the other waits and reuses them"
    target, go = tmp_path/'lm', tmp_path/'go'
    ps = [subprocess.Popen([sys.executable, '-c', CONCURRENT_SPLITS, str(target), str(go)], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.stdout.readline().strip() for p in ps] == ['ready', 'ready']   # both imported: start them at the same instant
    go.touch()
    outs = [json.loads(p.communicate(timeout=180)[0].strip().splitlines()[-1]) for p in ps]
    assert [p.returncode for p in ps] == [0, 0]
    assert sorted((o['train']['built'], o['valid']['built']) for o in outs) == [(False, False), (True, True)]
    for n in ('train', 'valid'):
        assert outs[0][n]['created'] == outs[1][n]['created'] and outs[0][n]['sha'] == outs[1][n]['sha']
        DiskLMDataset(target/n).verify(tokenizer=False)   # its rule is the script's own, not registered here
    waited = next(o for o in outs if not o['train']['built'])
    assert waited['secs'] > 0.3, waited     # it waited for the other's build rather than find it done
    assert sorted(q.name for q in target.iterdir() if not q.name.endswith('.lock')) == ['train', 'valid']
