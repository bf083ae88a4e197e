"Store built from raw text against fastai's own pipeline (the independent oracle), and what the fingerprint covers"
import os, subprocess, sys, json, functools, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import numpy as np, pandas as pd, pytest
from fastai.text.all import TextDataLoaders, Tokenizer, Numericalize, Datasets, BaseTokenizer, defaults, fix_html, lowercase, replace_maj
from fastai_memstream.core import CacheFormatError
from fastai_memstream.store import DiskLMDataset, wikitext_df, make_tokenizer

@pytest.fixture(scope='module')
def wiki():
    df = wikitext_df()
    df['is_valid'] = np.arange(len(df)) >= 50
    return df

@pytest.fixture(scope='module')
def fastai_dls(wiki):
    return TextDataLoaders.from_df(wiki, text_col='text', is_lm=True, valid_col='is_valid', bs=4, seq_len=16)

@pytest.fixture(scope='module')
def store_all(wiki, tmp_path_factory):
    return DiskLMDataset.from_df(wiki, tmp_path_factory.mktemp('s')/'all', text_col='text', n_workers=2, progress=False)

def test_vocab_equals_textdataloaders(store_all, fastai_dls):
    "fastai counts tokens over all rows (train and valid) before make_vocab; a store of all rows has that vocabulary"
    assert store_all.vocab == list(fastai_dls.vocab)
    assert store_all.data.dtype == np.uint16

def test_docs_equal_textdataloaders(wiki, store_all, fastai_dls, tmp_path):
    "Document by document, token for token, train and valid: subsets of the all-rows store are fastai's datasets"
    tr_idx,va_idx = np.flatnonzero(~wiki.is_valid.values),np.flatnonzero(wiki.is_valid.values)
    tr,va = store_all.subset(tr_idx, tmp_path/'train'),store_all.subset(va_idx, tmp_path/'valid')
    assert (tr.n_docs, va.n_docs) == (len(fastai_dls.train_ds), len(fastai_dls.valid_ds)) == (50, 10)
    for st,fds in ((tr, fastai_dls.train_ds), (va, fastai_dls.valid_ds)):
        for i in range(st.n_docs): np.testing.assert_array_equal(st.doc(i), fds[i][0].numpy())
    assert tr.vocab == va.vocab == list(fastai_dls.vocab)
    # the concatenated stream fastai's LMDataLoader reads, unshuffled
    fa_stream = np.concatenate([fastai_dls.train_ds[i][0].numpy() for i in range(len(fastai_dls.train_ds))])
    np.testing.assert_array_equal(np.asarray(tr.data), fa_stream)

def test_valid_store_with_given_vocab(wiki, store_all, fastai_dls, tmp_path):
    "A validation store numericalized with a given vocabulary equals fastai's validation items (single pass)"
    va = DiskLMDataset.from_df(wiki[wiki.is_valid], tmp_path/'va', vocab=store_all.vocab, n_workers=0, progress=False)
    for i in range(va.n_docs): np.testing.assert_array_equal(va.doc(i), fastai_dls.valid_ds[i][0].numpy())
    assert va.meta['params']['vocab_given'] and va.meta['counts']['unk_tokens'] > 0

def test_reference_notebook_pipeline(wiki, tmp_path):
    "from_datasets on the reference notebook's Datasets, both splits, equals the items; vocab from its Numericalize"
    df = wiki.iloc[:12].reset_index(drop=True)
    num = Numericalize()
    dsets = Datasets(df, [[lambda r: r.text, Tokenizer.from_df('text', n_workers=2), num]], splits=[list(range(9)), [9,10,11]])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the lambda is fingerprinted by its code, fine
        for split in (0, 1):
            st = DiskLMDataset.from_datasets(dsets, tmp_path/f's{split}', split_idx=split, progress=False)
            sub = dsets.subset(split)
            assert st.vocab == num.vocab and st.n_docs == len(sub)
            for i in range(len(sub)): np.testing.assert_array_equal(st.doc(i), sub[i][0].numpy())
    tkz = st.tokenizer()
    assert tkz('Hello World') == Tokenizer.from_df('text')('Hello World')

def test_workers_and_chunking_do_not_change_the_store(wiki, store_all, tmp_path):
    texts = wiki.text.tolist()
    a = DiskLMDataset.from_texts(texts, tmp_path/'a', n_workers=0, chunk_size=7, progress=False)
    b = DiskLMDataset.from_texts(iter(texts), tmp_path/'b', n_workers=2, chunk_size=3, progress=False, source_id='wiki60')
    for s in (a, b):
        assert s.meta['arrays']['tokens']['xxh3'] == store_all.meta['arrays']['tokens']['xxh3']
        assert s.meta['arrays']['doc_offsets']['xxh3'] == store_all.meta['arrays']['doc_offsets']['xxh3']
        assert s.vocab == store_all.vocab
    assert not any(p.name.startswith('.pass1') for p in (tmp_path/'a').iterdir())

def test_min_freq_max_vocab(wiki, tmp_path):
    "fastai's make_vocab on the same counts, with other min_freq/max_vocab"
    df = wiki.iloc[:10]
    for mf,mv in ((1, 60000), (2, 500)):
        num = Numericalize(min_freq=mf, max_vocab=mv)
        Datasets(df, [[lambda r: r.text, Tokenizer.from_df('text', n_workers=0), num]])
        st = DiskLMDataset.from_df(df, tmp_path/f'v{mf}', min_freq=mf, max_vocab=mv, n_workers=0, progress=False)
        assert st.vocab == num.vocab, (mf, mv)
        assert st.meta['params']['min_freq'] == mf

def test_fingerprint_covers_source_and_settings(tmp_path):
    texts = ['The cat sat on the mat.', 'A DOG barked <br /> twice', 'cat cat cat']
    kw = dict(n_workers=0, progress=False, min_freq=1)
    d = tmp_path/'s'
    def built(**k): return DiskLMDataset.from_texts(k.pop('texts', texts), d, **{**kw, **k}).built
    assert built() and not built()
    assert built(texts=texts[:2]) and built()                 # source
    assert built(min_freq=2) and not built(min_freq=2)        # make_vocab settings
    assert built(max_vocab=16)
    assert built(rules=[fix_html, lowercase])                 # rules
    assert built(rules=[fix_html, functools.partial(lowercase, add_eos=True)])
    assert built(tok=BaseTokenizer())                         # tokenizer
    assert built(tok=BaseTokenizer(split_char='a'))
    assert built(vocab=['xxunk', 'xxpad', 'xxbos', 'cat'])    # given vocab
    assert not built(vocab=['xxunk', 'xxpad', 'xxbos', 'cat'])
    assert built(force_rebuild=True)
    df = pd.DataFrame({'text': texts})
    assert DiskLMDataset.from_df(df, d, **kw).built and not DiskLMDataset.from_df(df.copy(), d, **kw).built
    df2 = df.copy(); df2.loc[1, 'text'] = 'changed'
    assert DiskLMDataset.from_df(df2, d, **kw).built

def test_one_shot_generator_warns_and_rebuilds(tmp_path):
    with pytest.warns(UserWarning, match='one-shot iterator'):
        a = DiskLMDataset.from_texts((t for t in ['a b', 'c d']), tmp_path/'g', n_workers=0, progress=False, min_freq=1)
    with pytest.warns(UserWarning, match='one-shot iterator'):
        b = DiskLMDataset.from_texts((t for t in ['a b', 'c d']), tmp_path/'g', n_workers=0, progress=False, min_freq=1)
    assert a.built and b.built

def test_non_text_items(tmp_path):
    with pytest.raises(TypeError, match='text 2 is a int'):
        DiskLMDataset.from_texts(['a', 'b', 3], tmp_path/'x', n_workers=2, progress=False)
    with pytest.raises(TypeError, match='text 1 is a bytes'):
        DiskLMDataset.from_texts(iter(['a', b'b']), tmp_path/'x', n_workers=0, progress=False, source_id='x')
    import datasets
    ds = datasets.Dataset.from_dict({'text': ['fine', None, 'fine']})
    with pytest.raises(TypeError, match=r'row 1 is a NoneType.*ds.filter'):
        DiskLMDataset.from_hf(ds, tmp_path/'x', n_workers=0, progress=False)
    assert not (tmp_path/'x').exists()

def test_multi_column_df_like_fastai(tmp_path):
    "Several text columns are joined with xxfld markers as fastai's tokenize_df does"
    df = pd.DataFrame({'title': ['First one', 'Second'], 'body': ['Some body text.', 'More text here.']})
    st = DiskLMDataset.from_df(df, tmp_path/'m', text_col=['title', 'body'], min_freq=1, n_workers=0, progress=False)
    num = Numericalize(min_freq=1)
    fa = Datasets(df, [[lambda r: r.text, Tokenizer.from_df(['title', 'body'], n_workers=0), num]])
    assert st.vocab == num.vocab
    for i in range(2): np.testing.assert_array_equal(st.doc(i), fa[i][0].numpy())
    assert 'xxfld' in [st.vocab[t] for t in st.doc(0)]

def test_tokenizer_rebuilt_in_fresh_process(store_all):
    "The recorded settings rebuild the same fastai Tokenizer in another interpreter (nothing pickled)"
    code = ("import sys, json; from fastai_memstream.store import DiskLMDataset; "
            "print(json.dumps(list(DiskLMDataset(sys.argv[1]).tokenizer()(sys.argv[2]))))")
    s = "Hello WORLD!!!! It's <br /> the 2nd   time."
    out = subprocess.run([sys.executable, '-c', code, str(store_all.path), s], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == list(Tokenizer.from_df('text')(s))
    assert make_tokenizer(store_all.meta).rules == defaults.text_proc_rules

def test_custom_rules_not_importable(tmp_path):
    st = DiskLMDataset.from_texts(['Hi there'], tmp_path/'r', rules=[lambda t: t.lower()], tok=BaseTokenizer(), min_freq=1, n_workers=0, progress=False)
    assert [st.vocab[i] for i in st.doc(0)] == ['hi', 'there']
    with pytest.raises(CacheFormatError, match='cannot be rebuilt by name'): st.tokenizer()
    assert st.tokenizer(rules=[str.lower])('A B') == ['a', 'b']
