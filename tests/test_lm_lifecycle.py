"""The fastai lifecycle of an LM learner on DiskLMDataLoaders: `learn.export()`/`load_learner` in a fresh process elsewhere with the
stores deleted, `learn.path` and the ULMFiT encoder hand-off to a fastai classifier, `test_dl` on short texts, `valid_pct=0`,
`from_csv`, and the checks that refuse mismatched stores and too small embeddings before training."""
import json, os, shutil, subprocess, sys, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.text.all import (TextDataLoaders, language_model_learner, text_classifier_learner, AWD_LSTM, awd_lstm_lm_config,
                             awd_lstm_clas_config, get_language_model, Learner, CrossEntropyLossFlat, load_learner)
from fastai_memstream.store import DiskLMDataset, wikitext_df
from fastai_memstream.lm import DiskLMDataLoaders, DiskLMDataLoader, LMStoreCheck

CFG = dict(emb_sz=16, n_hid=24, n_layers=1)

@pytest.fixture(scope='module')
def df(): return wikitext_df(n_articles=6)

@pytest.fixture
def work(tmp_path, monkeypatch):
    "A working folder as the current directory, as a user's notebook has"
    (tmp_path/'work').mkdir()
    monkeypatch.chdir(tmp_path/'work')
    return tmp_path/'work'

def _lm(dls): return language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **CFG), pretrained=False)

def _predict(learn, text='the storm', n=6):
    torch.manual_seed(0)
    return learn.predict(text, n_words=n, no_bar=True)

def test_export_and_load_learner_elsewhere_without_stores(df, work, tmp_path):
    dls = DiskLMDataLoaders.from_df(df, 'lmstore', text_col='text', valid_pct=0.34, seed=0, bs=4, seq_len=20, n_workers=0, progress=False, device='cpu')
    learn = _lm(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    want = _predict(learn)
    learn.export('lm.pkl')                                   # fastai's export: empty loaders, no optimizer state
    assert (work/'lm.pkl').exists() and learn.dls is dls     # and the learner keeps its loaders
    raw = (work/'lm.pkl').read_bytes()
    assert b'lmstore' not in raw and str(work).encode() not in raw, "the exported learner must not hold the stores' folder"
    deploy = tmp_path/'deploy'; deploy.mkdir()
    shutil.move(str(work/'lm.pkl'), deploy/'lm.pkl')
    shutil.rmtree(work/'lmstore')
    code = ("import json, torch, warnings; warnings.filterwarnings('ignore')\n"
            "from fastai.learner import load_learner\n"
            "import fastai_memstream.lm\n"
            "learn = load_learner('lm.pkl')\n"
            "torch.manual_seed(0)\n"
            "print(json.dumps(dict(text=learn.predict('the storm', n_words=6, no_bar=True), path=str(learn.path), "
            "n_vocab=len(learn.dls.vocab), lens=[len(dl) for dl in learn.dls.loaders])))\n")
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).parent.parent), 'HF_HUB_OFFLINE': '1'}
    out = subprocess.run([sys.executable, '-c', code], cwd=deploy, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res['text'] == want
    assert res['n_vocab'] == len(dls.vocab) and res['lens'] == [0, 0] and res['path'] == '.'

def test_learn_path_and_ulmfit_encoder_hand_off(df, work):
    "`learn.path` is the working folder, as fastai's: `save_encoder` then a fastai classifier's `load_encoder` find the same file"
    dls = DiskLMDataLoaders.from_df(df, 'lmstore', text_col='text', valid_pct=0.34, seed=0, bs=4, seq_len=20, n_workers=0, progress=False, device='cpu')
    assert dls.path == Path('.')
    learn = _lm(dls)
    assert learn.path == Path('.')
    (work/'models').mkdir(); torch.save({'stale': torch.zeros(1)}, work/'models'/'stale.pth')
    learn.save_encoder('enc')
    assert (work/'models'/'enc.pth').exists() and not (work/'lmstore'/'models').exists()
    cdf = df.assign(label=[i % 2 for i in range(len(df))])
    cdls = TextDataLoaders.from_df(cdf, text_col='text', label_col='label', valid_pct=0.34, seed=0, text_vocab=dls.vocab, bs=2, seq_len=20, device='cpu')
    clas = text_classifier_learner(cdls, AWD_LSTM, config=dict(awd_lstm_clas_config, **CFG), pretrained=False)
    clas.load_encoder('enc')
    enc, lm_enc = clas.model[0].module.encoder.weight, learn.model[0].encoder.weight
    assert enc.shape == lm_enc.shape and torch.equal(enc.cpu(), lm_enc.cpu())
    other = DiskLMDataLoaders.from_cache('lmstore', bs=4, seq_len=20, path=work/'elsewhere')
    assert _lm(other).path == work/'elsewhere'

def test_test_dl_short_texts_as_fastai(df, work):
    dls = DiskLMDataLoaders.from_df(df, 'lmstore', text_col='text', valid_pct=0.34, seed=0, bs=8, seq_len=20, n_workers=0, progress=False, device='cpu')
    learn = _lm(dls)
    tdl = dls.test_dl(['hi there'])                          # 3 tokens for 8 streams: no batch
    assert len(tdl) == 0
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        res = learn.get_preds(dl=tdl)
    assert res == (None, None)                                # fastai's `get_preds` on an empty loader: nothing, and a warning
    assert any('generator is empty' in str(o.message) for o in w)
    assert len(dls.test_dl(list(df.text[:2]))) > 0 and 'the storm' in _predict(learn)

def test_from_texts_refuses_a_dataframe(df, work):
    with pytest.raises(TypeError, match=r'from_df\(df, cache_dir, text_col'): DiskLMDataLoaders.from_texts(df, 'lmstore', progress=False)
    with pytest.raises(TypeError, match='valid_texts is a DataFrame'):
        DiskLMDataLoaders.from_texts(list(df.text), 'lmstore', valid_texts=df, progress=False)

def test_valid_pct_zero_trains_without_validation(df, work):
    fdls = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_pct=0, bs=4, seq_len=20, device='cpu')
    dls = DiskLMDataLoaders.from_df(df, 'lmstore', text_col='text', valid_pct=0, bs=4, seq_len=20, n_workers=0, progress=False, device='cpu')
    assert len(dls.loaders) == len(fdls.loaders) == 2 and len(dls.valid) == len(fdls.valid) == 0   # as fastai: an empty validation loader
    assert dls.vocab == list(fdls.vocab) and dls.train.dataset.n_docs == len(df)
    assert not (work/'lmstore'/'valid').exists()
    learn = _lm(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    assert len(learn.recorder.losses) == len(dls.train)
    with pytest.raises(ValueError, match='or valid_pct=0 for no validation'):
        DiskLMDataLoaders.from_df(df, 'lmstore2', text_col='text', valid_pct=0.1, progress=False)

def test_from_csv_mirrors_fastai(df, work):
    df.to_csv(work/'texts.csv', index=False)
    dls = DiskLMDataLoaders.from_csv(work, 'texts.csv', text_col='text', valid_pct=0.34, seed=0, bs=4, seq_len=20, n_workers=0, progress=False, device='cpu')
    ref = DiskLMDataLoaders.from_df(df, 'ref', text_col='text', valid_pct=0.34, seed=0, bs=4, seq_len=20, n_workers=0, progress=False, device='cpu')
    assert dls.path == work and (work/'texts_lm'/'train').exists()          # fastai's from_csv: `path` is also the loaders' path
    assert dls.vocab == ref.vocab
    assert all(torch.equal(a[0], b[0]) for a, b in zip(dls.valid, ref.valid))
    (work/'semi.csv').write_text('text;n\n' + ''.join(f'the storm number {i} hit the coast, and the sea rose {i} feet;{i}\n' for i in range(30)))
    d2 = DiskLMDataLoaders.from_csv(work, 'semi.csv', delimiter=';', text_col='text', valid_pct=0.2, seed=0, bs=4, seq_len=8, n_workers=0, progress=False)
    assert d2.train.dataset.n_docs == 24 and 'storm' in d2.vocab

def _id_store(path, vocab=None, vocab_size=None, seed=0):
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, 100, int(n)) for n in rng.integers(5, 60, 40)]
    return DiskLMDataset.from_token_docs(docs, path, vocab=vocab, vocab_size=vocab_size, progress=False)

def test_mismatched_stores_refused_naming_both(work, df):
    voc = [f'w{i}' for i in range(100)]
    a, b = _id_store(work/'a', vocab=voc), _id_store(work/'b', vocab=voc[::-1], seed=1)
    dla, dlb = DiskLMDataLoader(a, bs=4, seq_len=10), DiskLMDataLoader(b, bs=4, seq_len=10)
    with pytest.raises(ValueError, match=r'b was numericalized with another vocabulary than .*a .*rebuild it with `vocab=`'):
        DiskLMDataLoaders(dla, dlb)
    c, d = _id_store(work/'c', vocab_size=100), _id_store(work/'d', vocab_size=300, seed=1)
    with pytest.raises(ValueError, match='vocabulary of 300 .* one of 100'): DiskLMDataLoaders.from_stores(c, d)
    # same vocabulary, other tokenizer settings (no text rules): the ids would mean other text
    texts = list(df.text)
    t = DiskLMDataset.from_texts(texts[:4], work/'t', n_workers=0, progress=False)
    v = DiskLMDataset.from_texts(texts[4:], work/'v', vocab=t.vocab, rules=[], n_workers=0, progress=False)
    with pytest.raises(ValueError, match=r"v was tokenized with other settings than .*t \(they differ in \['rules'\]"):
        DiskLMDataLoaders.from_stores(t, v)

def test_embedding_smaller_than_vocab_refused_at_creation(work):
    voc = [f'w{i}' for i in range(100)]
    a, b = _id_store(work/'a', vocab=voc), _id_store(work/'b', vocab=voc, seed=1)
    dls = DiskLMDataLoaders.from_stores(a, b, bs=4, seq_len=10, device='cpu')
    small = get_language_model(AWD_LSTM, 60, config=dict(awd_lstm_lm_config, **CFG))
    with pytest.raises(ValueError, match='input embedding has 60 rows but the stores use 100 token ids'):
        Learner(dls, small, loss_func=CrossEntropyLossFlat())
    assert dls.n_ids == 100
    ok = Learner(dls, get_language_model(AWD_LSTM, 100, config=dict(awd_lstm_lm_config, **CFG)), loss_func=CrossEntropyLossFlat())
    assert isinstance(ok.lm_store_check, LMStoreCheck)
    ok.model = small                                          # swapped after creation: caught before the first step
    with pytest.raises(ValueError, match='60 rows'): ok.fit(1)
    from fastai.data.core import DataLoaders
    other = Learner(DataLoaders(dls.train, dls.valid), get_language_model(AWD_LSTM, 100, config=dict(awd_lstm_lm_config, **CFG)), loss_func=CrossEntropyLossFlat())
    assert not any(isinstance(c, LMStoreCheck) for c in other.cbs)   # other loaders: the check leaves the learner
