"""DiskLMDataLoader on fastai's DataLoader contract: fastai's own `get_preds` (reorder, with_input) against fastai's LMDataLoader,
items grouped into batches by `create_batches`, `show_batch` as a table; and one test per fastai private this library still relies on,
failing with a message that says what changed."""
import inspect, os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np, pandas as pd, pytest, torch
from fastai.text.all import LMDataLoader, DataLoaders, language_model_learner, AWD_LSTM, awd_lstm_lm_config, LMLearner
from fastai.learner import Learner
import fastai_memstream.lm as lm
from fastai_memstream.store import DiskLMDataset
from fastai_memstream.lm import DiskLMDataLoader, DiskLMDataLoaders

CFG = dict(awd_lstm_lm_config, emb_sz=8, n_hid=12, n_layers=1)

@pytest.fixture(scope='module')
def store(tmp_path_factory):
    rng = np.random.default_rng(3)
    docs = [rng.integers(0, 60, int(n)) for n in rng.integers(1, 50, 80)]
    ds = DiskLMDataset.from_token_docs(docs, tmp_path_factory.mktemp('c')/'s', vocab=[f'w{i}' for i in range(60)], progress=False)
    return docs, ds

def _learners(docs, ds, bs=5, seq_len=9):
    dl = DiskLMDataLoader(ds, bs=bs, seq_len=seq_len, device='cpu')
    learn = language_model_learner(DiskLMDataLoaders(dl, dl.new(), device='cpu'), AWD_LSTM, config=CFG, pretrained=False)
    fdl = LMDataLoader([torch.as_tensor(d) for d in docs], bs=bs, seq_len=seq_len)
    fdls = DataLoaders(fdl, fdl.new(), device='cpu'); fdls.vocab = ds.vocab
    flearn = language_model_learner(fdls, AWD_LSTM, config=CFG, pretrained=False)
    flearn.model.load_state_dict(learn.model.state_dict())
    return learn, flearn

def test_no_get_preds_patch():
    assert LMLearner.get_preds.__module__.startswith('fastai.'), "lm must not replace fastai's LMLearner.get_preds"
    assert not hasattr(LMLearner, '_memstream_orig_get_preds')

def test_fastais_get_preds_matches_fastais_loader(store):
    "fastai's own `get_preds` (reorder on, with_input) on our loader = fastai's loader without the reordering (which fails on it)"
    docs, ds = store
    learn, flearn = _learners(docs, ds)
    assert len(learn.dls.valid) > 3
    with learn.no_bar(), flearn.no_bar():
        inp, preds, targs = learn.get_preds(with_input=True)
        finp, fpreds, ftargs = flearn.get_preds(with_input=True, reorder=False)
        with pytest.raises(IndexError): flearn.get_preds()      # fastai's reordering indexes rows by its item numbers
        assert torch.equal(inp, finp) and torch.equal(targs, ftargs) and torch.allclose(preds, fpreds, atol=1e-6)
        p2, t2 = learn.get_preds(dl=learn.dls.valid.new(shuffle=True, seed=4))   # a shuffled loader: fastai's `new(shuffle=False)` path skipped
        assert p2.shape == preds.shape

def test_reorder_undoes_a_permuted_item_order(store):
    "get_idxs holds one item per stream (the rows of the first batch): fastai's reordering puts permuted rows back"
    from fastai.learner import _ConstantFunc
    docs, ds = store
    learn, _ = _learners(docs, ds)
    dl = learn.dls.valid
    assert dl.get_idxs() == list(range(dl.bs))
    perm = [3, 0, 4, 1, 2]
    pdl = dl.new(get_idxs=_ConstantFunc(perm))
    x, _ = next(iter(pdl)); x0, _ = next(iter(dl))
    assert torch.equal(x, x0[perm])
    with learn.no_bar():
        i1, p1, _ = learn.get_preds(with_input=True)
        i2, p2, _ = learn.get_preds(dl=pdl, with_input=True)
    assert torch.equal(i1, i2) and torch.allclose(p1, p2, atol=1e-6)

def test_create_batches_groups_items_and_deals_whole_batches(store):
    docs, ds = store
    dl = DiskLMDataLoader(ds, bs=4, seq_len=7)
    ref = [b for b in LMDataLoader([torch.as_tensor(d) for d in docs], bs=4, seq_len=7)]
    got = list(dl.create_batches([4*3 + r for r in range(4)]))        # from batch 3 on
    assert len(got) == len(ref) - 3 and all(torch.equal(a[0], b[0]) for a, b in zip(got, ref[3:]))
    dl.num_workers = 2                                                  # what fastai sets in each worker process
    parts = []
    for offs in (0, 1):
        dl.offs = offs; parts.append(list(dl.create_batches(dl.get_idxs())))
    assert [len(p) for p in parts] == [len(range(0, len(ref), 2)), len(range(1, len(ref), 2))]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(parts[1], ref[1::2]))
    dl.num_workers, dl.offs = 1, 0
    with pytest.raises(ValueError, match='rows of one batch'): list(dl.create_batches([0, 5]))

def test_show_batch_is_a_table(store, monkeypatch):
    docs, ds = store
    shown = []
    monkeypatch.setattr(lm, 'display_df', shown.append, raising=False)
    dl = DiskLMDataLoader(ds, bs=4, seq_len=6)
    assert dl.show_batch(max_n=3) is None                                   # displayed once, not returned too
    assert len(shown) == 1, 'show_batch must display one table'
    df, = shown
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ['text', 'text_'] and len(df) == 3
    x, y = dl.one_batch()
    assert df.text[0] == ' '.join(ds.vocab[i] for i in x[0]) and df.text_[0] == ' '.join(ds.vocab[i] for i in y[0])

def test_fastai_private_FakeLoader_still_fits():
    "`_CtxFakeLoader` subclasses fastai's private `_FakeLoader` (to choose the workers' start method): its constructor and attributes must stay"
    from fastai.data.load import _FakeLoader
    params = list(inspect.signature(_FakeLoader.__init__).parameters)
    assert params[:5] == ['self', 'd', 'pin_memory', 'num_workers', 'timeout'] and {'persistent_workers', 'pin_memory_device'} <= set(params), (
        f"fastai changed _FakeLoader.__init__ to {params}: update _CtxFakeLoader in nbs/02_lm.ipynb")
    assert isinstance(inspect.getattr_static(_FakeLoader, 'multiprocessing_context'), property), (
        "fastai's _FakeLoader.multiprocessing_context is no longer a property: update _CtxFakeLoader (mp_context) in nbs/02_lm.ipynb")
    assert 'self.d.create_batches(self.d.sample())' in inspect.getsource(_FakeLoader.__iter__), (
        "fastai's _FakeLoader no longer iterates create_batches(sample()): DiskLMDataLoader's workers rely on it (nbs/02_lm.ipynb)")

def test_fastai_private_wrap_dl_still_fits():
    "distrib replaces fastai's private `DistributedTrainer._wrap_dl` (the only place fastai deals a loader out to the processes)"
    pytest.importorskip('accelerate')
    from fastai.distributed import DistributedTrainer
    import fastai_memstream.distrib as distrib
    assert hasattr(DistributedTrainer, '_memstream_orig_wrap_dl'), "fastai has no DistributedTrainer._wrap_dl any more: update nbs/07_distrib.ipynb"
    assert DistributedTrainer._wrap_dl is distrib._wrap_dl
    src = inspect.getsource(DistributedTrainer)
    assert src.count('self._wrap_dl(') >= 2, ("fastai's DistributedTrainer no longer calls _wrap_dl for the training and validation loaders: "
                                               "LM loaders would be dealt round-robin; update nbs/07_distrib.ipynb")

def test_constant_get_idxs_with_workers(store):
    "fastai's `get_preds` hands the loader a constant `get_idxs`: worker processes (fork) deal out whole batches of those rows, in order"
    from fastai.learner import _ConstantFunc
    docs, ds = store
    dl = DiskLMDataLoader(ds, bs=5, seq_len=9)
    perm = [3, 0, 4, 1, 2]
    ref = [(x[perm], y[perm]) for x, y in dl]
    got = list(dl.new(get_idxs=_ConstantFunc(perm), num_workers=2, mp_context='fork'))
    assert len(got) == len(ref) and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, ref))
