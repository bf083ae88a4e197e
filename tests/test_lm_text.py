"DiskLMDataLoaders from raw text against fastai's TextDataLoaders(is_lm=True) on the shipped WikiText sample"
import os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np, pandas as pd, pytest, torch
from fastai.text.all import TextDataLoaders, LMDataLoader, language_model_learner, AWD_LSTM, awd_lstm_lm_config, Tokenizer
from fastai_memstream.store import DiskLMDataset, wikitext_df
from fastai_memstream.lm import DiskLMDataLoaders, DiskLMDataLoader

def assert_same(a, b):
    assert len(a) == len(b)
    for i, ((x, y), (x2, y2)) in enumerate(zip(a, b)):
        assert torch.equal(x, x2) and torch.equal(y, y2), f"batch {i} differs"

@pytest.fixture(scope='module')
def wiki(tmp_path_factory):
    df = wikitext_df(n_articles=25)
    tmp = tmp_path_factory.mktemp('text')
    dls = DiskLMDataLoaders.from_df(df, tmp/'cache', valid_pct=0.2, seed=7, text_col='text', bs=16, seq_len=40, progress=False, device='cpu')
    fdls = TextDataLoaders.from_df(df, valid_pct=0.2, seed=7, text_col='text', is_lm=True, bs=16, seq_len=40, device='cpu')
    return df, tmp, dls, fdls

def test_batches_are_fastais(wiki):
    df, tmp, dls, fdls = wiki
    assert dls.vocab == list(fdls.vocab)      # one vocabulary over training and validation texts, as fastai counts it
    assert dls.train.dataset.n_docs == len(fdls.train_ds) and dls.valid.dataset.n_docs == len(fdls.valid_ds)
    assert_same(list(dls.valid), list(fdls.valid))
    assert_same(list(dls.train.new(shuffle=False)), list(fdls.train.new(shuffle=False)))
    # shuffled: fastai's loader on fastai's own numericalized training documents, permuted by this epoch's order
    order = dls.train.doc_order
    fdocs = [fdls.train_ds[int(i)][0] for i in order]
    assert_same(list(dls.train), list(LMDataLoader(fdocs, bs=16, seq_len=40)))

def test_reuse_is_fast_and_rebuilds_on_change(wiki):
    df, tmp, dls, fdls = wiki
    t0 = time.time()
    again = DiskLMDataLoaders.from_df(df, tmp/'cache', valid_pct=0.2, seed=7, text_col='text', bs=16, seq_len=40, progress=False)
    assert time.time() - t0 < 1
    assert not again.train.dataset.built and not again.valid.dataset.built
    t0 = time.time()
    DiskLMDataLoaders.from_cache(tmp/'cache', bs=16, seq_len=40)
    assert time.time() - t0 < 0.5
    other = DiskLMDataLoaders.from_df(df, tmp/'cache', valid_pct=0.2, seed=8, text_col='text', bs=16, seq_len=40, progress=False)
    assert other.train.dataset.built        # another split: other texts, rebuilt in place

def test_text_factories_and_errors(wiki, tmp_path):
    df, tmp, dls, fdls = wiki
    texts = df.text.tolist()
    d = DiskLMDataLoaders.from_texts(iter(texts[:20]), tmp_path/'t', valid_texts=texts[20:], bs=8, seq_len=30, progress=False, n_workers=0)
    assert d.train.dataset.n_docs == 20 and d.valid.dataset.n_docs == 5 and d.valid.dataset.vocab == d.vocab
    # a stream of training texts: the vocabulary comes from them alone; two lists: from both, as fastai's
    only_train = DiskLMDataset.from_texts(texts[:20], tmp_path/'only', n_workers=0, progress=False)
    assert d.vocab == only_train.vocab
    d1 = DiskLMDataLoaders.from_texts(texts[:20], tmp_path/'t2', valid_texts=texts[20:], bs=8, seq_len=30, progress=False, n_workers=0)
    both = DiskLMDataset.from_texts(texts, tmp_path/'both', n_workers=0, progress=False)
    assert d1.vocab == both.vocab and d1.train.dataset.n_docs == 20 and d1.valid.dataset.n_docs == 5
    assert np.array_equal(d1.valid.dataset.data, both.data[both.doc_offsets[20]:])
    df2 = df.assign(is_valid=[i % 5 == 0 for i in range(len(df))])
    d2 = DiskLMDataLoaders.from_df(df2, tmp_path/'v', valid_col='is_valid', bs=8, seq_len=30, progress=False, n_workers=0)
    f2 = TextDataLoaders.from_df(df2, valid_col='is_valid', text_col='text', is_lm=True, bs=8, seq_len=30)
    assert d2.vocab == list(f2.vocab)
    assert_same(list(d2.valid), list(f2.valid))
    assert_same(list(d2.train.new(shuffle=False)), list(f2.train.new(shuffle=False)))
    with pytest.raises(ValueError, match='leaves no validation text'): DiskLMDataLoaders.from_texts(texts[:3], tmp_path/'x', valid_pct=0.2)
    with pytest.raises(TypeError, match='pass a list'): DiskLMDataLoaders.from_texts(iter(texts), tmp_path/'x')
    with pytest.raises(ValueError, match='valid_col'): DiskLMDataLoaders.from_df(df, tmp_path/'x', valid_col='nope')
    with pytest.raises(ValueError, match='too few for one batch'):
        DiskLMDataLoaders.from_texts(['a b c d e f'] * 10, tmp_path/'tiny', valid_pct=0.5, bs=64, progress=False, n_workers=0, min_freq=1)

def test_learner_trains_and_predicts(wiki):
    df, tmp, dls, fdls = wiki
    torch.manual_seed(0)
    cfg = dict(awd_lstm_lm_config, emb_sz=32, n_hid=32, n_layers=1)
    learn = language_model_learner(dls, AWD_LSTM, config=cfg, pretrained=False)
    e0 = dls.train.epoch
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=10, show_plot=False)
        assert dls.train.epoch == e0                 # lr_find's partial pass does not use up an epoch
        learn.fit_one_cycle(1, 1e-2)
    assert dls.train.epoch == e0 + 1
    train_loss, valid_loss = learn.recorder.values[-1][:2]
    assert valid_loss < np.log(len(dls.vocab))
    out = learn.predict("the album", n_words=6, no_bar=True)
    assert out.startswith("the album") and len(out.split()) >= 6
    # the same prompt through fastai's own loaders tokenizes to the same ids
    assert torch.equal(dls.test_dl(["The Album was"]).items[0], fdls.test_dl(["The Album was"]).items[0])
    assert isinstance(dls.train_ds.tokenizer, Tokenizer)
