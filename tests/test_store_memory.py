"Builders stream: the peak memory of a build, measured in a fresh process, does not grow with the corpus"
import sys, json, subprocess, textwrap
import pytest

SCRIPT = textwrap.dedent("""
    import sys, json, tempfile, shutil
    from pathlib import Path
    import numpy as np
    from fastai_memstream.store import DiskLMDataset, wikitext_df
    from fastai.text.core import BaseTokenizer, lowercase
    kind, n = sys.argv[1], int(sys.argv[2])
    def status(k):
        for line in open('/proc/self/status'):
            if line.startswith(k): return int(line.split()[1]) / 1024
    d = Path(tempfile.mkdtemp())
    arts = wikitext_df().text.tolist()
    def docs(): # n million tokens, in documents of 10,000 int64 ids, made on the fly
        for i in range(n * 100): yield (np.arange(10_000, dtype=np.int64) * (i+1)) % 50_000
    def texts(): # the WikiText sample n times over
        for _ in range(n): yield from arts
    kw = dict(tok=BaseTokenizer(), rules=[lowercase], n_workers=0, progress=False)
    # warm up: import and initialise everything a build touches
    DiskLMDataset.from_token_docs([np.arange(10)], d/'w1', vocab_size=50_000, progress=False)
    DiskLMDataset.from_texts(arts[:2], d/'w2', **kw)
    open('/proc/self/clear_refs', 'w').write('5')   # reset the peak (VmHWM) to the current RSS
    rss0 = status('VmRSS')
    if kind == 'ids': ds = DiskLMDataset.from_token_docs(docs(), d/'s', vocab_size=50_000, progress=False, source_id='ids')
    else: ds = DiskLMDataset.from_texts(texts(), d/'s', source_id='texts', **kw)
    print(json.dumps(dict(growth_mb=status('VmHWM') - rss0, tokens=len(ds), store_mb=ds.data.nbytes/2**20)))
    shutil.rmtree(d)
""")

RUNS = [('ids', 4), ('ids', 32), ('texts', 6), ('texts', 12)]

@pytest.fixture(scope='module')
def peaks():
    "Run the four builds in fresh processes, side by side (each measures only itself)"
    ps = {r: subprocess.Popen([sys.executable, '-c', SCRIPT, r[0], str(r[1])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in RUNS}
    res = {}
    for r,p in ps.items():
        out,err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        res[r] = json.loads(out.strip().splitlines()[-1])
    return res

def test_token_docs_peak_flat(peaks):
    small,big = peaks['ids', 4],peaks['ids', 32]
    assert big['tokens'] == 32_000_000 and big['store_mb'] > 60
    # holding the corpus would take 244 MB of int64 (61 MB even as uint16); the writer buffers 1M tokens
    assert big['growth_mb'] < 30, big
    assert big['growth_mb'] - small['growth_mb'] < 10, (small, big)

def test_texts_peak_flat(peaks):
    small,big = peaks['texts', 6],peaks['texts', 12]
    assert big['tokens'] == 2 * small['tokens'] > 2_000_000
    # holding the token strings of the documents, as fastai does, would add well over 50 MB from 6x to 12x;
    # the store holds a chunk of about a million characters, the vocabulary and write buffers of 1M tokens
    assert big['growth_mb'] < 60, big
    assert big['growth_mb'] - small['growth_mb'] < 10, (small, big)
