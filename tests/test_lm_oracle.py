"DiskLMDataLoader against fastai's own LMDataLoader (the oracle): many corpora, batch sizes, sequence lengths, epochs"
import itertools, json
import numpy as np, pytest, torch
from fastai.text.data import LMDataLoader, LMTensorText, TensorText
from fastai_memstream.store import DiskLMDataset
from fastai_memstream.lm import DiskLMDataLoader, DiskLMDataLoaderDataset, MemoryEfficientLMDataLoader


def fastai_batches(docs, bs, seq_len):
    return list(LMDataLoader([torch.as_tensor(np.asarray(d, dtype=np.int64)) for d in docs], bs=bs, seq_len=seq_len))

def assert_same(mine, ref):
    assert len(mine) == len(ref)
    for i, ((x, y), (x2, y2)) in enumerate(zip(mine, ref)):
        assert x.shape == x2.shape and torch.equal(x, x2), f"batch {i}: inputs differ"
        assert torch.equal(y, y2), f"batch {i}: targets differ"

# corpora: (seed, n_docs, max_len); one-token documents, long documents, many tiny ones
CORPORA = [(0, 1, 5000), (1, 7, 3), (2, 50, 200), (3, 300, 40), (4, 2000, 6), (5, 40, 2000)]
GEOMS = [(1, 1), (2, 3), (5, 7), (16, 72), (64, 72), (13, 100), (3, 9999)]

@pytest.fixture(scope='module')
def stores(tmp_path_factory):
    res = []
    for seed, n, mx in CORPORA:
        rng = np.random.default_rng(seed)
        docs = [rng.integers(0, 1000, int(k)) for k in rng.integers(1, mx+1, n)]
        ds = DiskLMDataset.from_token_docs(docs, tmp_path_factory.mktemp('s')/f'c{seed}', vocab_size=1000, progress=False)
        res.append((docs, ds))
    return res

@pytest.mark.parametrize('ci', range(len(CORPORA)))
def test_unshuffled_matches_fastai(stores, ci):
    docs, ds = stores[ci]
    total = sum(len(d) for d in docs)
    n_ok = 0
    for bs, sl in GEOMS:
        if total > 2000 and bs*sl < 10: continue   # thousands of batches through fastai's per-item loader: slow, nothing new
        if total - 1 < bs:
            with pytest.raises(ValueError, match='too few for one batch'): DiskLMDataLoader(ds, bs=bs, seq_len=sl)
            assert len(LMDataLoader([torch.as_tensor(d) for d in docs], bs=bs, seq_len=sl)) == 0   # fastai yields nothing
            continue
        dl = DiskLMDataLoader(ds, bs=bs, seq_len=sl)
        mine = list(dl)
        assert_same(mine, fastai_batches(docs, bs, sl))
        assert type(mine[0][0]) is LMTensorText and type(mine[0][1]) is TensorText
        assert mine[-1][0].shape[1] == dl.last_len
        n_ok += 1
    assert n_ok >= 2

@pytest.mark.parametrize('ci', [2, 3, 4, 5])
def test_shuffled_matches_fastai_on_doc_order(stores, ci):
    docs, ds = stores[ci]
    for bs, sl in [(5, 7), (16, 72), (3, 10)]:
        dl = DiskLMDataLoader(ds, bs=bs, seq_len=sl, shuffle=True, seed=ci)
        orders = []
        for epoch in range(3):
            order = dl.doc_order
            assert_same(list(dl), fastai_batches([docs[i] for i in order], bs, sl))
            orders.append(order.tolist())
        assert dl.epoch == 3
        assert orders[0] != orders[1] != orders[2]

def test_items_match_fastai_create_item(stores):
    docs, ds = stores[3]
    ref = LMDataLoader([torch.as_tensor(d) for d in docs], bs=6, seq_len=11)
    dl = DiskLMDataLoader(ds, bs=6, seq_len=11)
    for seq in [0, 1, 5, 6, 17, dl.n - 7, dl.n - 1]:
        x, y = dl.create_item(seq)
        x2, y2 = ref.create_item(seq)
        assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(IndexError): dl.create_item(dl.n)
    with pytest.raises(IndexError): dl.create_batch(dl.n_batches)

def test_legacy_item_view_and_loader(stores):
    docs, ds = stores[2]
    ref = fastai_batches(docs, 4, 9)
    lds = DiskLMDataLoaderDataset(ds, bs=4, seq_len=9, seed=3)
    got = [torch.stack([lds[b*4 + r][0] for r in range(4)]) for b in range(lds.n_batches)]
    for g, (x, _) in zip(got, ref): assert torch.equal(g, x)
    for _ in range(2):
        lds.shuffle()
        sref = fastai_batches([docs[i] for i in lds.doc_order], 4, 9)
        b = lds.n_batches - 1
        assert torch.equal(torch.stack([lds[b*4 + r][1] for r in range(4)]), sref[b][1])
    # a torch DataLoader over the item view gives the loader's batches (the notebook's usage)
    tdl = torch.utils.data.DataLoader(DiskLMDataLoaderDataset(ds, bs=4, seq_len=9), batch_size=4)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(tdl, ref))
    mdl = MemoryEfficientLMDataLoader(ds, bs=4, seq_len=9, shuffle=True, seed=1)
    assert_same(list(mdl.new(shuffle=False)), ref)
    order = mdl.doc_order
    assert_same(list(mdl), fastai_batches([docs[i] for i in order], 4, 9))

def test_uint32_store_and_odd_dtypes(tmp_path):
    rng = np.random.default_rng(9)
    docs = [rng.integers(0, 70_000, int(k)) for k in rng.integers(1, 60, 80)]
    ds = DiskLMDataset.from_token_docs(docs, tmp_path/'big', vocab_size=70_000, progress=False)
    assert ds.dtype == np.uint32
    assert_same(list(DiskLMDataLoader(ds, bs=7, seq_len=12)), fastai_batches(docs, 7, 12))
    dl = DiskLMDataLoader(ds, bs=7, seq_len=12, shuffle=True, seed=0)
    assert_same(list(dl), fastai_batches([docs[i] for i in DiskLMDataLoader(ds, bs=7, seq_len=12, shuffle=True, seed=0).doc_order], 7, 12))

def test_resume_at_every_step(stores):
    "Stopping after any batch (also at an epoch's end) and resuming gives the uninterrupted run"
    docs, ds = stores[3]
    mk = lambda: DiskLMDataLoader(ds, bs=6, seq_len=30, shuffle=True, seed=11)
    ref = mk()
    run = list(ref) + list(ref) + list(ref)
    n = len(ref)
    for stop in [0, 1, n-1, n, n+2, 2*n-1, 2*n]:
        dl = mk()
        seen = []
        while len(seen) < stop:
            seen += list(itertools.islice(dl, stop - len(seen))) if len(seen) + n > stop else list(dl)
        state = json.loads(json.dumps(dl.state_dict()))
        dl2 = mk().load_state_dict(state)
        rest = []
        while len(seen) + len(rest) < 3*n: rest += list(dl2)
        assert_same(seen + rest, run)
