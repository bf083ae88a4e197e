"A store built by several processes (torchrun, gloo on CPU): identical to the one-process build; a rank killed midway; rerun reuses shards"
import json, os, socket, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest
from fastai_memstream.store import DiskLMDataset, ShardedTokens
from fastai_memstream.lm import DiskLMDataLoader

HERE = Path(__file__).parent
SCRIPT = HERE/'_shard_build.py'
sys.path.insert(0, str(HERE))
from _shard_build import corpus, word_corpus, vocab_of

TORCHRUN = Path(sys.executable).parent/'torchrun'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'PYTHONWARNINGS': 'ignore'}

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def results(out, world=2): return [json.loads((out/f'rank{r}.json').read_text()) for r in range(world)]

def check_ok(res, out):
    for r in res: assert 'error' not in r, r.get('tb', r)

def run(args, timeout=120):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]

def single(tmp, n=300):
    return DiskLMDataset.from_token_docs(corpus(n), tmp/'single', vocab_size=70_000, progress=False, distributed=False)

def same_store(a:DiskLMDataset, b:DiskLMDataset):
    "Same tokens, documents, counts and parameters"
    assert (a.n_docs, a.total_tokens, a.dtype) == (b.n_docs, b.total_tokens, b.dtype)
    np.testing.assert_array_equal(a.data[:], b.data[:])
    np.testing.assert_array_equal(np.asarray(a.doc_offsets), np.asarray(b.doc_offsets))
    assert a.meta['counts'] == b.meta['counts'] and a.meta['params'] == b.meta['params']
    for i in (0, 1, a.n_docs//2, a.n_docs-1): np.testing.assert_array_equal(a.doc(i), b.doc(i))

@pytest.fixture(scope='module')
def standalone(tmp_path_factory):
    "`torchrun --standalone --nproc_per_node=2` building from a list of token ids"
    tmp = tmp_path_factory.mktemp('standalone')
    run([str(TORCHRUN), '--standalone', '--nproc_per_node=2', str(SCRIPT), str(tmp/'store'), str(tmp), 'list'])
    return tmp, results(tmp)

def test_standalone_identical(standalone):
    tmp, res = standalone
    check_ok(res, tmp)
    assert [r['built'] for r in res] == [True, True] and res[0]['content'] == res[1]['content']   # every rank opened the same store
    ds = DiskLMDataset(tmp/'store')
    assert ds.meta['format_version'] == 2 and ds.n_shards == 2 and isinstance(ds.data, ShardedTokens)
    assert [s['file'] for s in ds.meta['shards']] == ['tokens-00000.bin', 'tokens-00001.bin']
    assert ds.meta['shards'][0]['n_docs'] > 0 and ds.meta['shards'][1]['n_docs'] > 0   # both ranks wrote documents
    same_store(ds, single(tmp))
    ds.verify()
    left = sorted(p.name for p in tmp.iterdir() if p.name.startswith('.store.'))
    assert left == ['.store.lock'], left   # no partial folder, heartbeat or failure marker left behind
    assert sorted(p.name for p in ds.path.iterdir()) == ['doc_offsets.bin', 'manifest.json', 'tokens-00000.bin', 'tokens-00001.bin']

def test_loader_batches_identical(standalone):
    "DiskLMDataLoader batches from the sharded store are those of the one-file store (shuffled, every batch of an epoch)"
    tmp, _ = standalone
    ds, one = DiskLMDataset(tmp/'store'), single(tmp)
    for kw in (dict(shuffle=True, seed=3), dict(shuffle=False)):
        a = list(DiskLMDataLoader(ds, bs=4, seq_len=9, **kw)); b = list(DiskLMDataLoader(one, bs=4, seq_len=9, **kw))
        assert len(a) == len(b) > 10
        for (xa,ya),(xb,yb) in zip(a, b): np.testing.assert_array_equal(xa.numpy(), xb.numpy()); np.testing.assert_array_equal(ya.numpy(), yb.numpy())

def test_rerun_reuses_store(standalone, tmp_path):
    "A second distributed call with the same input reopens the committed store on every rank"
    tmp, _ = standalone
    out = tmp_path
    run([str(TORCHRUN), '--standalone', '--nproc_per_node=2', str(SCRIPT), str(tmp/'store'), str(out), 'list'])
    res = results(out); check_ok(res, out)
    assert [r['built'] for r in res] == [False, False]

def test_two_nodes_generator(tmp_path):
    "Two `torchrun --nnodes=2` invocations on this machine; documents from a generator, dealt in blocks of 32 to the ranks"
    port = free_port()
    cmd = lambda r: [str(TORCHRUN), '--nnodes=2', f'--node_rank={r}', '--nproc_per_node=1', '--master_addr=127.0.0.1', f'--master_port={port}',
                     str(SCRIPT), str(tmp_path/'store'), str(tmp_path), 'gen', json.dumps(dict(shard_docs=32))]
    ps = [subprocess.Popen(cmd(r), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV) for r in (0, 1)]
    outs = [p.communicate(timeout=120)[0] for p in ps]
    assert all(p.returncode == 0 for p in ps), outs[0][-3000:] + outs[1][-3000:]
    res = results(tmp_path); check_ok(res, tmp_path)
    ds = DiskLMDataset(tmp_path/'store')
    assert ds.n_shards == 10   # 300 documents in blocks of 32
    assert [s['first_doc'] for s in ds.meta['shards'][:3]] == [sum(len(d) > 0 for d in corpus()[:k]) for k in (0, 32, 64)]   # empty ones skipped
    same_store(ds, single(tmp_path))

def ranks(store, out, opts, world=2):
    "Plain processes as torchrun starts them (RANK, WORLD_SIZE, MASTER_*): one can be killed without the launcher tearing down the other"
    port = free_port()
    env = lambda r: {**ENV, 'RANK': str(r), 'LOCAL_RANK': str(r), 'WORLD_SIZE': str(world), 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port)}
    ps = [subprocess.Popen([sys.executable, str(SCRIPT), str(store), str(out), 'list', json.dumps(opts)], env=env(r),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    return [p.communicate(timeout=120)[0] for p in ps], ps

def test_killed_rank_then_rerun(tmp_path):
    "Rank 1 is killed (SIGKILL) midway through its shard: rank 0 fails naming it within the timeout, nothing is committed; a rerun reuses shard 0"
    store, out1, out2 = tmp_path/'store', tmp_path/'run1', tmp_path/'run2'
    out1.mkdir(); out2.mkdir()
    t0 = time.monotonic()
    logs, ps = ranks(store, out1, dict(die_rank=1, die_at=200, timeout=3))
    assert ps[1].returncode != 0 and not (out1/'rank1.json').exists()
    r0 = json.loads((out1/'rank0.json').read_text())
    assert r0.get('error') == 'RankFailedError', r0
    assert 'rank 1 showed no sign of life for 3s' in r0['msg'] and 'No store was committed' in r0['msg']
    assert 3 <= r0['elapsed'] < 20, r0['elapsed']
    assert not (store/'manifest.json').exists()
    part = [p for p in tmp_path.iterdir() if p.name.startswith('.store.partial-') and p.is_dir()]
    assert (part[0].parent/f'{part[0].name}.rank0.failed').exists()   # rank 0 tells any other rank why it stopped
    assert len(part) == 1 and (part[0]/'shard-00000.json').exists() and not (part[0]/'shard-00001.json').exists()
    ino = (part[0]/'tokens-00000.bin').stat().st_ino
    logs, ps = ranks(store, out2, dict(timeout=10))
    res = results(out2); check_ok(res, out2)
    assert res[0]['reused'] == [0] and res[1]['reused'] == [] and res[0]['built']
    assert (store/'tokens-00000.bin').stat().st_ino == ino   # the finished shard was kept, not rewritten
    same_store(DiskLMDataset(store), single(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.store.')) == ['.store.lock']   # the dead run's files are gone

def test_failing_rank_named_at_once(tmp_path):
    "A rank that raises (a float document in its share) makes the other fail at once with its error, not after the timeout"
    store = tmp_path/'store'
    logs, ps = ranks(store, tmp_path, dict(bad_doc=250, timeout=60))
    res = results(tmp_path)
    assert res[1]['error'] == 'TypeError' and 'document 250' in res[1]['msg']
    assert res[0]['error'] == 'RankFailedError' and 'rank 1 failed' in res[0]['msg'] and 'document 250' in res[0]['msg']
    assert res[0]['elapsed'] < 30
    assert not (store/'manifest.json').exists()

def test_vocabulary_agreed_across_ranks(tmp_path):
    "A builder that counts words per rank and combines the counts through torch.distributed gets the one-process vocabulary and ids"
    from collections import Counter
    run([str(TORCHRUN), '--standalone', '--nproc_per_node=2', str(SCRIPT), str(tmp_path/'store'), str(tmp_path), 'words'])
    res = results(tmp_path); check_ok(res, tmp_path)
    texts = word_corpus()
    vocab = vocab_of(Counter(w for t in texts for w in t.split()))
    o2i = {w:i for i,w in enumerate(vocab)}
    one = DiskLMDataset.from_token_docs([[o2i.get(w, 0) for w in t.split()] for t in texts], tmp_path/'one', vocab=vocab, progress=False, distributed=False)
    ds = DiskLMDataset(tmp_path/'store')
    assert ds.n_shards == 2 and ds.vocab == vocab and ds.meta['files']['vocab']['file'] == 'vocab.json'
    np.testing.assert_array_equal(ds.data[:], one.data[:]); np.testing.assert_array_equal(np.asarray(ds.doc_offsets), np.asarray(one.doc_offsets))
