"Stores built with Hugging Face fast tokenizers and fastai's SentencePiece: ids equal the tokenizer's / fastai's, the tokenizer travels with the store"
import os, json, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import numpy as np, pandas as pd, pytest
from fastai_memstream.core import sample_data, CacheCorruptError, CacheFormatError
from fastai_memstream.text import DiskLMDataset, wikitext_df, make_tokenizer

transformers = pytest.importorskip('transformers')
from transformers import AutoTokenizer, PreTrainedTokenizerFast

@pytest.fixture(scope='module')
def hf_tok(): return AutoTokenizer.from_pretrained(sample_data('bert-base-uncased'))

@pytest.fixture(scope='module')
def wiki(): return wikitext_df(n_articles=12)

def test_hf_ids_equal_tokenizer_every_builder(hf_tok, wiki, tmp_path):
    "from_texts (2 processes), from_df, from_folder and from_hf store `tokenizer(text)['input_ids']` per document (BERT ends each with [SEP])"
    ref = [hf_tok(t)['input_ids'] for t in wiki.text]
    a = DiskLMDataset.from_texts(wiki.text.tolist(), tmp_path/'a', tok=hf_tok, n_workers=2, progress=False)
    assert [a.doc(i).tolist() for i in range(a.n_docs)] == ref
    assert a.dtype == np.uint16 and a.vocab_size == len(hf_tok) and a.vocab == hf_tok.convert_ids_to_tokens(list(range(len(hf_tok))))
    b = DiskLMDataset.from_df(wiki, tmp_path/'b', tok=hf_tok, n_workers=0, progress=False)
    (tmp_path/'f').mkdir()
    for i,t in enumerate(wiki.text): (tmp_path/'f'/f'{i:02d}.txt').write_text(t, encoding='utf-8')
    c = DiskLMDataset.from_folder(tmp_path/'f', tmp_path/'c', tok=hf_tok, n_workers=2, progress=False)
    import datasets
    d = DiskLMDataset.from_hf(datasets.Dataset.from_pandas(wiki), tmp_path/'d', tok=hf_tok, n_workers=2, progress=False)
    for s in (b, c, d): assert np.array_equal(np.asarray(s.data), np.asarray(a.data)) and np.array_equal(s.doc_offsets, a.doc_offsets)

def test_hf_dataloaders_end_to_end(hf_tok, wiki, tmp_path):
    "`DiskLMDataLoaders.from_df(tok_tfm=hf_tok)`: both splits keep the tokenizer, batches hold its ids, a second call reuses the stores"
    from fastai_memstream.lm import DiskLMDataLoaders
    dls = DiskLMDataLoaders.from_df(wiki, tmp_path/'dl', text_col='text', tok_tfm=hf_tok, bs=4, seq_len=16, progress=False, device='cpu')
    x,y = dls.one_batch()
    assert int(x.max()) < len(hf_tok) and (x[:, 1:] == y[:, :-1]).all()
    for dl in dls.loaders: assert dl.dataset.hf_tokenizer()('a test')['input_ids'] == hf_tok('a test')['input_ids']
    again = DiskLMDataLoaders.from_df(wiki, tmp_path/'dl', text_col='text', tok_tfm=hf_tok, bs=4, seq_len=16, progress=False, device='cpu')
    assert again.train.dataset.built is False

def test_hf_other_tokenizer_rebuilds(hf_tok, wiki, tmp_path):
    "The tokenizer's content is in the fingerprint: a store built with one tokenizer is rebuilt for another"
    from tokenizers import normalizers
    a = DiskLMDataset.from_texts(wiki.text.tolist()[:3], tmp_path/'s', tok=hf_tok, n_workers=0, progress=False)
    cased = AutoTokenizer.from_pretrained(sample_data('bert-base-uncased'))
    cased.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    b = DiskLMDataset.from_texts(wiki.text.tolist()[:3], tmp_path/'s', tok=cased, n_workers=0, progress=False)
    assert b.built and b.doc(0).tolist() == cased(wiki.text[0])['input_ids'] != hf_tok(wiki.text[0])['input_ids']
    assert b.hf_tokenizer()('Lobster')['input_ids'] == cased('Lobster')['input_ids']

def test_hf_bad_input(hf_tok, tmp_path):
    "slow tokenizer: TypeError naming the fast class; vocabulary past uint32: ValueError; empty texts: skipped and counted"
    from transformers import BertTokenizerLegacy
    slow = BertTokenizerLegacy(vocab_file=str(sample_data('bert-base-uncased')/'vocab.txt'))
    with pytest.raises(TypeError, match=r'use_fast=True'): DiskLMDataset.from_texts(['a b'], tmp_path/'x', tok=slow, progress=False)
    class Huge(type(hf_tok)):
        def __len__(self): return 2**32 + 1
    huge = AutoTokenizer.from_pretrained(sample_data('bert-base-uncased')); huge.__class__ = Huge
    with pytest.raises(ValueError, match='uint32'): DiskLMDataset.from_texts(['a b'], tmp_path/'x', tok=huge, progress=False)
    with pytest.warns(UserWarning, match='skipped 2 empty'):
        s = DiskLMDataset.from_texts(['', 'the cat', ' '], tmp_path/'e', tok=hf_tok, n_workers=0, progress=False)
    assert s.n_docs == 1 and s.meta['counts']['empty_docs_skipped'] == 2

def test_hf_store_is_untrusted(hf_tok, tmp_path, monkeypatch):
    "Loading the tokenizer reads only the store's checksummed tokenizer.json: a manifest naming a class or another file runs nothing"
    s = DiskLMDataset.from_texts(['the cat sat'], tmp_path/'s', tok=hf_tok, n_workers=0, progress=False)
    mf = s.path/'manifest.json'; m = json.loads(mf.read_text())
    m['params']['tokenizer']['cls'] = 'os.system'   # never imported: loading goes through tokenizers only
    mf.write_text(json.dumps(m))
    called = []
    monkeypatch.setattr(os, 'system', lambda *a: called.append(a))
    assert DiskLMDataset(s.path).hf_tokenizer()('the cat')['input_ids'] == hf_tok('the cat')['input_ids'] and not called
    (s.path/'tokenizer'/'tokenizer.json').write_text('{"model": 1}')
    with pytest.raises(CacheCorruptError): DiskLMDataset(s.path).hf_tokenizer()

# ---------- SentencePiece
@pytest.fixture(scope='module')
def spm(wiki, tmp_path_factory):
    from fastai.text.all import SentencePieceTokenizer, defaults
    d = tmp_path_factory.mktemp('spm')
    t = SentencePieceTokenizer(vocab_sz=700, cache_dir=d)
    t.setup(wiki.text.tolist(), defaults.text_proc_rules)
    return d/'spm.model'

def test_sp_oracle_textdataloaders(wiki, spm, tmp_path, monkeypatch):
    "Store tokens (and the rebuilt tokenizer's pieces) equal fastai's `TextDataLoaders.from_df(is_lm=True, tok_tfm=SentencePieceTokenizer(sp_model=...))`"
    from fastai.text.all import TextDataLoaders, SentencePieceTokenizer
    monkeypatch.chdir(tmp_path)
    df = wiki.copy(); df['is_valid'] = np.arange(len(df)) >= 10
    fa = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', tok_tfm=SentencePieceTokenizer(sp_model=spm), bs=4, seq_len=16)
    st = DiskLMDataset.from_df(df, tmp_path/'s', tok=SentencePieceTokenizer(sp_model=spm), splits={'train': range(10), 'valid': [10, 11]}, n_workers=2, progress=False)
    assert st['train'].vocab == list(fa.vocab)
    for i in range(10): assert st['train'].doc(i).tolist() == fa.train_ds[i][0].tolist()
    for i in range(2): assert st['valid'].doc(i).tolist() == fa.valid_ds[i][0].tolist()
    prompt = 'The European lobster lives in the sea.'
    tk = st['valid'].tokenizer()
    assert tk.encodes(prompt) == fa.train_ds.tokenizer.encodes(prompt) and '▁the' in tk.encodes(prompt)

def test_sp_reuse_and_model_in_store(wiki, spm, tmp_path, monkeypatch):
    "The model is copied into the store and fingerprinted by content: a second call reuses the store without a warning; rebuilding the tokenizer trains nothing and writes nothing"
    from fastai.text.all import SentencePieceTokenizer
    monkeypatch.chdir(tmp_path)
    a = DiskLMDataset.from_texts(wiki.text.tolist(), tmp_path/'s', tok=SentencePieceTokenizer(sp_model=spm, cache_dir=tmp_path/'c'), n_workers=0, progress=False)
    assert (a.path/'tokenizer'/'spm.model').read_bytes() == spm.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        b = DiskLMDataset.from_texts(wiki.text.tolist(), tmp_path/'s', tok=SentencePieceTokenizer(sp_model=spm, cache_dir=tmp_path/'c'), n_workers=0, progress=False)
    assert b.built is False
    tk = DiskLMDataset(a.path).tokenizer()
    assert tk.tok.sp_model == a.path/'tokenizer'/'spm.model'
    out = tk.encodes('the lobster and the sea')
    assert '▁the' in out and not (tmp_path/'tmp'/'spm.model').exists()

def test_sp_untrained_trains_into_store(wiki, tmp_path, monkeypatch):
    "An untrained SentencePieceTokenizer is trained on the texts (after the rules), as fastai does, into the store; never into ./tmp"
    from fastai.text.all import SentencePieceTokenizer, TextDataLoaders
    monkeypatch.chdir(tmp_path)
    s = DiskLMDataset.from_texts(wiki.text.tolist(), tmp_path/'s', tok=SentencePieceTokenizer(vocab_sz=600, cache_dir=tmp_path/'never'), n_workers=0, progress=False)
    assert sorted(p.name for p in (s.path/'tokenizer').iterdir()) == ['spm.model'] and not (tmp_path/'never'/'spm.model').exists()
    assert 'spm.model' in s.meta['params']['tokenizer']['files']
    fa = TextDataLoaders.from_df(wiki, text_col='text', is_lm=True, valid_pct=0, tok_tfm=SentencePieceTokenizer(vocab_sz=600, cache_dir=tmp_path/'fa'), bs=4, seq_len=16)
    assert s.vocab == list(fa.vocab)

@pytest.mark.parametrize('first', ['fastai_memstream.subword', 'fastai_memstream.text', 'fastai_memstream.store', 'fastai_memstream.all'])
def test_subword_module_import_order(first):
    "The subword code lives in `fastai_memstream.subword`; whichever module is imported first, the old names and the patched methods are there"
    import subprocess, sys
    code = (f"import {first}; import fastai_memstream.text as t, fastai_memstream.store as s, fastai_memstream.subword as w; "
            "assert t._build_hf_tok is w._build_hf_tok and s._hf_spec is w._hf_spec and t._is_hf is w._is_hf; "
            "assert s.DiskLMDataset.hf_tokenizer and s.DiskLMDataset.doc_sep_id and t.make_tokenizer")
    p = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
