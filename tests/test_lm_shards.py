"DiskLMDataLoader over a sharded store (what ranks of torch.distributed write): the batches of the one-file store, read from `ShardedTokens.joint`"
import itertools, json
import numpy as np, pytest, torch
from fastai_memstream.store import DiskLMDataset, ShardedTokens
from fastai_memstream.distrib import _sharded_here
from fastai_memstream.lm import DiskLMDataLoader, DiskLMDataLoaderDataset


def corpus(n=400, seed=0):
    "Documents of 0 to 300 tokens (some empty, some of one token)"
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 300, n); lens[::37] = 0; lens[5::41] = 1
    return [rng.integers(0, 5000, int(k)).astype(np.uint16) for k in lens]

@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    "The same documents as a one-file store and as a 3-shard store"
    tmp, docs = tmp_path_factory.mktemp('shards'), corpus()
    one = DiskLMDataset.from_token_docs(docs, tmp/'one', vocab_size=5000, progress=False, distributed=False)
    three = _sharded_here(docs, tmp/'three', 3, vocab_size=5000)
    assert isinstance(three.data, ShardedTokens) and len(three.data.parts) == 3 and three.data.joint is not None
    return one, three

def batches(store, n_epochs=1, **kw):
    dl = DiskLMDataLoader(store, **kw)
    return [b for _ in range(n_epochs) for b in dl]

def assert_same(a, b):
    assert len(a) == len(b) > 0
    for i, ((x, y), (x2, y2)) in enumerate(zip(a, b)):
        assert type(x) is type(x2) and x.shape == x2.shape and torch.equal(x, x2), f"batch {i}: inputs differ"
        assert torch.equal(y, y2), f"batch {i}: targets differ"

@pytest.fixture
def no_per_token(monkeypatch):
    "Indexing `ShardedTokens` itself (a shift per token) fails: the loader must gather from `joint`"
    def boom(self, k): raise AssertionError("the loader indexed ShardedTokens (per-token shift) instead of ShardedTokens.joint")
    monkeypatch.setattr(ShardedTokens, '__getitem__', boom)

@pytest.mark.parametrize('bs, sl', [(1, 50), (4, 9), (16, 72), (7, 1000)])
def test_same_batches_unshuffled(pair, bs, sl, no_per_token):
    one, three = pair
    assert_same(batches(three, bs=bs, seq_len=sl), batches(one, bs=bs, seq_len=sl))

@pytest.mark.parametrize('bs, sl', [(4, 9), (16, 72), (3, 500)])
def test_same_batches_shuffled(pair, bs, sl, no_per_token):
    "Three epochs: every epoch's document order, the shards' gaps folded into its stream map"
    one, three = pair
    assert_same(batches(three, 3, bs=bs, seq_len=sl, shuffle=True, seed=bs), batches(one, 3, bs=bs, seq_len=sl, shuffle=True, seed=bs))

def test_gathers_from_joint(pair):
    "One-file stores keep their plain memory map and no stream map when read in order; sharded ones read `joint`"
    one, three = pair
    d1, d3 = DiskLMDataLoader(one, bs=4, seq_len=9), DiskLMDataLoader(three, bs=4, seq_len=9)
    next(iter(d1)); next(iter(d3))
    assert d1._smap() is None and d1._tokens() is not three.data.joint and isinstance(d1._tokens(), np.ndarray)
    assert d3._tokens() is three.data.joint and d3._smap() is not None

def test_random_access_and_switching_shuffle(pair, no_per_token):
    "`create_batch`, `create_item`, `one_batch`, and a loader switched from in order to shuffled (DiskLMDataLoaderDataset.shuffle)"
    one, three = pair
    a, b = DiskLMDataLoader(three, bs=5, seq_len=20, seed=1), DiskLMDataLoader(one, bs=5, seq_len=20, seed=1)
    for k in (0, 3, a.n_batches-1): assert_same([a.create_batch(k)], [b.create_batch(k)])
    for s in (0, 7, a.n-1): assert all(torch.equal(u, v) for u, v in zip(a.create_item(s), b.create_item(s)))
    assert_same([a.one_batch()], [b.one_batch()])
    da, db = DiskLMDataLoaderDataset(three, bs=5, seq_len=20, seed=2), DiskLMDataLoaderDataset(one, bs=5, seq_len=20, seed=2)
    assert all(torch.equal(u, v) for u, v in zip(da[11], db[11]))
    da.shuffle(); db.shuffle()
    assert all(torch.equal(u, v) for i in (0, 11, len(da)-1) for u, v in zip(da[i], db[i]))

@pytest.mark.parametrize('ctx', ['fork', 'spawn'])
def test_workers(pair, ctx):
    "Two worker processes (each maps the shards anew) give the batches of the one-file store without workers, shuffled and not"
    one, three = pair
    for kw in (dict(shuffle=True, seed=5), dict(shuffle=False)):
        assert_same(batches(three, 2 if kw['shuffle'] else 1, bs=8, seq_len=30, num_workers=2, mp_context=ctx, **kw),
                    batches(one, 2 if kw['shuffle'] else 1, bs=8, seq_len=30, **kw))

def test_resume(pair, no_per_token):
    "A state saved mid-epoch from the sharded store resumes as the one-file store's run continues"
    one, three = pair
    ref = batches(one, 2, bs=6, seq_len=25, shuffle=True, seed=9)
    dl = DiskLMDataLoader(three, bs=6, seq_len=25, shuffle=True, seed=9)
    head = list(itertools.islice(dl, 13))
    state = json.loads(json.dumps(dl.state_dict()))
    dl2 = DiskLMDataLoader(three, bs=6, seq_len=25, shuffle=True).load_state_dict(state)
    assert_same(head + list(dl2) + list(dl2), ref)

def test_distrib_shard(pair, no_per_token):
    "Each rank's share of the streams (`shard`, what `learn.distrib_ctx()` calls) is the one-file store's"
    one, three = pair
    for kw in (dict(shuffle=True, seed=4), dict(shuffle=False)):
        for r in (0, 1):
            a = DiskLMDataLoader(three, bs=4, seq_len=16, **kw).shard(r, 2)
            b = DiskLMDataLoader(one, bs=4, seq_len=16, **kw).shard(r, 2)
            assert_same(list(a) + list(a), list(b) + list(b))

def test_without_joint_mapping(pair, monkeypatch):
    "Where the shards cannot be mapped side by side (`joint` is None), the loader falls back to indexing `ShardedTokens`: same batches"
    one, three = pair
    monkeypatch.setattr(ShardedTokens, 'joint', property(lambda self: None))
    for kw in (dict(shuffle=True, seed=1), dict(shuffle=False)):
        dl = DiskLMDataLoader(three, bs=4, seq_len=9, **kw)
        assert_same(list(dl), batches(one, bs=4, seq_len=9, **kw))
        assert dl._tokens() is three.data

def test_one_nonempty_shard(tmp_path, no_per_token):
    "A sharded store whose other shards are empty (fewer documents than ranks): one memory map, read as a one-file store"
    docs = [np.arange(500, dtype=np.uint16)]
    one = DiskLMDataset.from_token_docs(docs, tmp_path/'one', vocab_size=5000, progress=False, distributed=False)
    two = _sharded_here(docs, tmp_path/'two', 2, vocab_size=5000)
    assert two.n_shards == 2 and isinstance(two.data, np.ndarray)
    for kw in (dict(shuffle=True, seed=1), dict(shuffle=False)): assert_same(batches(two, bs=3, seq_len=20, **kw), batches(one, bs=3, seq_len=20, **kw))

def test_document_across_shards(pair, tmp_path):
    "Shards cut inside a document (no builder writes them): a shift per document cannot work, so the loader indexes `ShardedTokens` (same batches)"
    import copy
    one, _ = pair
    o, toks = np.asarray(one.doc_offsets), np.asarray(one.data)
    k = int(np.argmax(np.diff(o) > 10)); cut = int(o[k]) + 5   # inside document k
    files = [tmp_path/'a.bin', tmp_path/'b.bin']
    toks[:cut].tofile(files[0]); toks[cut:].tofile(files[1])
    st = copy.copy(one)
    st._data = ShardedTokens([np.memmap(f, dtype=toks.dtype, mode='r') for f in files], files)
    assert st.data.joint is not None
    for kw in (dict(shuffle=True, seed=2), dict(shuffle=False)):
        dl = DiskLMDataLoader(st, bs=4, seq_len=30, **kw)
        assert_same(list(dl), batches(one, bs=4, seq_len=30, **kw))
        assert not dl._joint() and dl._tokens() is st.data
