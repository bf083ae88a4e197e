"DiskLMDataLoader with worker processes (fork and spawn): same batches as without workers; small, flat worker memory"
import itertools, json, os, pickle, subprocess, sys, textwrap
import numpy as np, pytest, torch
from fastai_memstream.store import DiskLMDataset
from fastai_memstream.lm import DiskLMDataLoader


def synth_store(path, n_tokens, seed=0):
    "A store of `n_tokens` Zipf-distributed ids in documents of realistic (log-normal) lengths"
    rng = np.random.default_rng(seed)
    lens = rng.lognormal(5.5, 1.0, size=n_tokens//100).astype(np.int64) + 1
    lens = lens[np.cumsum(lens) <= n_tokens]
    toks = (rng.zipf(1.3, size=int(lens.sum())) % 60000).astype(np.uint16)
    offs = np.concatenate([[0], np.cumsum(lens)])
    docs = (toks[offs[i]:offs[i+1]] for i in range(len(lens)))
    return DiskLMDataset.from_token_docs(docs, path, vocab_size=60000, progress=False, source_id=f'synth-{n_tokens}-{seed}')

def assert_same(a, b):
    assert len(a) == len(b)
    for (x, y), (x2, y2) in zip(a, b): assert torch.equal(x, x2) and torch.equal(y, y2)

@pytest.fixture(scope='module')
def small(tmp_path_factory): return synth_store(tmp_path_factory.mktemp('w')/'small', 200_000)

def test_loader_pickles_only_the_path(small):
    dl = DiskLMDataLoader(small, bs=16, seq_len=20, shuffle=True, seed=0)
    next(iter(dl))                                  # fills the per-process caches (memory map, epoch's stream map)
    assert len(pickle.dumps(small)) < 300
    assert len(pickle.dumps(dl)) < 20_000           # no tokens, no offsets, no epoch order
    dl2 = pickle.loads(pickle.dumps(dl))
    assert_same(list(dl2), list(dl))

@pytest.mark.parametrize('ctx', ['fork', 'spawn'])
def test_workers_give_the_same_batches(small, ctx):
    ref = DiskLMDataLoader(small, bs=16, seq_len=50, shuffle=True, seed=3)
    expected = list(ref) + list(ref)
    dl = DiskLMDataLoader(small, bs=16, seq_len=50, shuffle=True, seed=3, num_workers=2, mp_context=ctx)
    got = list(dl) + list(dl)                       # two epochs: the workers see the new epoch's order
    assert_same(got, expected)
    assert dl.epoch == 2
    if ctx == 'spawn': return                      # every pass spawns fresh interpreters: slow; resuming is the same code
    # resumed mid-epoch, with workers
    dl = DiskLMDataLoader(small, bs=16, seq_len=50, shuffle=True, seed=3, num_workers=2, mp_context=ctx)
    head = list(itertools.islice(dl, 7))
    state = json.loads(json.dumps(dl.state_dict()))
    dl2 = DiskLMDataLoader(small, bs=16, seq_len=50, shuffle=True, num_workers=2, mp_context=ctx).load_state_dict(state)
    assert_same(head + list(dl2), expected[:len(ref)])

WORKER_MEM = textwrap.dedent('''
    import sys, os, json, psutil
    from fastai_memstream.lm import DiskLMDataLoader
    def mem(pid):
        st = {l.split(':')[0]: int(l.split()[1]) for l in open(f'/proc/{pid}/status') if l.startswith(('RssAnon', 'RssFile'))}
        sm = {l.split(':')[0]: int(l.split()[1]) for l in open(f'/proc/{pid}/smaps_rollup') if l.startswith('Private_Dirty')}
        return dict(anon_mb=st['RssAnon']/1024, file_mb=st['RssFile']/1024, private_dirty_mb=sm.get('Private_Dirty', 0)/1024)
    if __name__ == '__main__':
        ctx, res = sys.argv[1], []
        for store in sys.argv[2:]:
            dl = DiskLMDataLoader(store, bs=64, seq_len=72, shuffle=True, seed=0, num_workers=2, mp_context=ctx)
            for i, b in enumerate(dl):
                if i == min(150, len(dl)-2):
                    kids = [k for k in psutil.Process().children(recursive=True) if 'resource_tracker' not in ' '.join(k.cmdline())]
                    res.append([mem(k.pid) for k in kids]); break
        print(json.dumps(res))
''')

def worker_mem(stores, ctx, tmp_path):
    "Memory of the two workers of a loader over each store, measured mid-epoch from a fresh process"
    fn = tmp_path/'worker_mem.py'
    fn.write_text(WORKER_MEM)
    out = subprocess.run([sys.executable, str(fn), ctx, *[str(s.path) for s in stores]], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert [len(r) for r in res] == [2]*len(stores), res
    return res

@pytest.mark.parametrize('ctx', ['fork', 'spawn'])
def test_worker_memory_small_and_flat(tmp_path, ctx):
    "Each worker re-opens the memory map: its own (anonymous, private) memory does not grow with the corpus"
    s1 = synth_store(tmp_path/'s1', 1_000_000)
    s2 = synth_store(tmp_path/'s2', 12_000_000)     # fastai would copy 11M more int64 tokens (88 MB) into each worker
    m1, m2 = worker_mem([s1, s2], ctx, tmp_path)
    key = 'private_dirty_mb' if ctx == 'fork' else 'anon_mb'   # a forked worker shares its parent's pages: count what it wrote
    for a, b in zip(m1, m2):
        print(ctx, key, round(a[key], 1), '->', round(b[key], 1), 'MB; file-backed', round(a['file_mb'], 1), '->', round(b['file_mb'], 1))
        assert b[key] - a[key] < 4, (a, b)
        if ctx == 'fork': assert b[key] < 40, b
