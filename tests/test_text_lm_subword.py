"Loaders over Hugging Face and SentencePiece stores: decode/show_batch/test_dl/predict use the store's tokenizer (no '##', no 'xxunk', text out)"
import os, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import numpy as np, pytest, torch
from fastai_memstream.core import sample_data
from fastai_memstream.text import wikitext_df
from fastai_memstream.lm import DiskLMDataLoaders

transformers = pytest.importorskip('transformers')
from transformers import AutoTokenizer

@pytest.fixture(scope='module')
def hf_tok(): return AutoTokenizer.from_pretrained(sample_data('bert-base-uncased'))

@pytest.fixture(scope='module')
def wiki(): return wikitext_df(n_articles=6)

@pytest.fixture(scope='module')
def hf_dls(wiki, hf_tok, tmp_path_factory):
    return DiskLMDataLoaders.from_df(wiki, tmp_path_factory.mktemp('hf')/'s', text_col='text', tok_tfm=hf_tok, bs=4, seq_len=24, progress=False, device='cpu', n_workers=0)

def _learner(dls):
    from fastai.text.all import language_model_learner, AWD_LSTM, awd_lstm_lm_config
    cfg = {**awd_lstm_lm_config, 'emb_sz': 16, 'n_hid': 16, 'n_layers': 1}
    return language_model_learner(dls, AWD_LSTM, config=cfg, pretrained=False)

def test_hf_show_batch_and_decode_are_text(hf_dls):
    _,_,samples = hf_dls.show_batch(show=False)
    txt = ' '.join(str(s) for row in samples for s in row)
    assert '##' not in txt and '[CLS]' not in txt and '[SEP]' not in txt and 'the' in txt

def test_hf_tokenizer_and_test_dl(hf_dls, hf_tok):
    "dls.tokenizer is the store's HF tokenizer; test_dl encodes as the store did, without the separator ending a document (a prompt goes on)"
    assert hf_dls.tokenizer('the lobster')['input_ids'] == hf_tok('the lobster')['input_ids']
    tdl = hf_dls.test_dl(['the european lobster lives in the sea'])
    assert tdl.items[0].tolist() == hf_tok('the european lobster lives in the sea')['input_ids'][:-1]

def test_hf_predict_returns_text(hf_dls):
    learn = _learner(hf_dls)
    out = learn.predict('the european lobster', n_words=6)
    assert isinstance(out, str) and out.startswith('the european lobster') and '##' not in out and 'xxunk' not in out

def test_hf_predict_after_export(hf_dls, tmp_path):
    "An exported learner carries the tokenizer (not the store's path): predict works after load_learner"
    from fastai.learner import load_learner
    learn = _learner(hf_dls)
    learn.path = tmp_path
    learn.export('m.pkl')
    l2 = load_learner(tmp_path/'m.pkl')
    assert l2.predict('the european lobster', n_words=3).startswith('the european lobster')

@pytest.fixture(scope='module')
def sp_model(wiki, tmp_path_factory):
    from fastai.text.all import SentencePieceTokenizer, defaults
    d = tmp_path_factory.mktemp('spm')
    t = SentencePieceTokenizer(vocab_sz=500, cache_dir=d); t.setup(wiki.text.tolist(), defaults.text_proc_rules)
    return d/'spm.model'

def test_sp_test_dl_equals_fastai_and_predict_text(wiki, sp_model, tmp_path, monkeypatch):
    "test_dl tokens equal fastai's `TextDataLoaders(tok_tfm=SentencePieceTokenizer(sp_model=...))`; nothing is trained on the prompt; predict gives text"
    from fastai.text.all import TextDataLoaders, SentencePieceTokenizer
    monkeypatch.chdir(tmp_path)
    df = wiki.copy(); df['is_valid'] = [False]*5 + [True]
    fa = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', tok_tfm=SentencePieceTokenizer(sp_model=sp_model), bs=4, seq_len=24)
    dls = DiskLMDataLoaders.from_df(df, tmp_path/'s', text_col='text', valid_col='is_valid', tok_tfm=SentencePieceTokenizer(sp_model=sp_model),
                                    bs=4, seq_len=24, progress=False, device='cpu', n_workers=0)
    prompt = 'The European lobster lives in the sea'
    assert dls.vocab == list(fa.vocab)
    assert dls.test_dl([prompt]).items[0].tolist() == fa.test_dl([prompt]).items[0].tolist()
    assert not (tmp_path/'tmp'/'spm.model').exists()
    learn = _learner(dls)
    out = learn.predict(prompt, n_words=4)
    assert isinstance(out, str) and '▁' not in out and out.lower().startswith('xxbos the european lobster')
    _,_,samples = dls.show_batch(show=False)
    assert not any('▁' in t for s in samples for t in s)
    from fastai.learner import load_learner   # the exported learner carries the SentencePiece model, not the store's path
    learn.path = tmp_path; learn.export('sp.pkl')
    import shutil; shutil.rmtree(tmp_path/'s')
    assert load_learner(tmp_path/'sp.pkl').predict(prompt, n_words=2).lower().startswith('xxbos the european lobster')

def test_hf_tokenizer_passed_with_store_of_ids(wiki, hf_tok, tmp_path):
    "The issue's route: a store built by hand from HF ids, `DiskLMDataLoaders(..., tokenizer=hf_tok)`: test_dl and predict use it (no AttributeError, no 'xxunk')"
    from fastai_memstream.store import DiskLMDataset
    from fastai_memstream.lm import DiskLMDataLoader
    s = DiskLMDataset.from_token_docs([hf_tok(t)['input_ids'] for t in wiki.text], tmp_path/'ids', vocab_size=len(hf_tok), progress=False)
    dls = DiskLMDataLoaders(DiskLMDataLoader(s, bs=4, seq_len=24), DiskLMDataLoader(s.new_empty(), bs=4, seq_len=24), device='cpu', tokenizer=hf_tok)
    assert dls.test_dl(['the sea']).items[0].tolist() == hf_tok('the sea')['input_ids'][:-1]
    assert len(dls.vocab) == len(hf_tok)
    out = _learner(dls).predict('the european lobster', n_words=3)
    assert out.startswith('the european lobster') and '##' not in out
