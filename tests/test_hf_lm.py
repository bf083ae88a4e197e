"Hugging Face causal LMs through fastai (`fastai_memstream.hf_lm`): loss, training, generation, vocabulary check, export to a fresh process"
import os, sys, json, math, shutil, subprocess, textwrap, warnings
from pathlib import Path
import pytest, torch, torch.nn.functional as F
from fastai.learner import load_learner
from fastai_memstream.core import sample_data
from fastai_memstream.store import DiskLMDataset
from fastai_memstream.lm import DiskLMDataLoaders
from fastai_memstream.hf_lm import hf_lm_learner, hf_lm_splitter, HFCausalLM, HFLMLearner, check_hf_lm, _prompt_ids

transformers = pytest.importorskip('transformers')
from transformers import AutoTokenizer, AutoModelForCausalLM, GPT2Config
transformers.logging.set_verbosity_error()
warnings.filterwarnings('ignore', message='load_learner` uses')

ENV = dict(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
TEXTS = ['the cat sat on a mat.', 'one dog ran in my park.']

@pytest.fixture(scope='module')
def tok(): return AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))

def make_dls(tok, folder, n=100, bs=8, seq_len=16, seed=0):
    "Loaders over stores built with the Hugging Face tokenizer (`tok=`)"
    trn = DiskLMDataset.from_texts(TEXTS*n, folder/'train', tok=tok, progress=False)
    val = DiskLMDataset.from_texts(TEXTS*10, folder/'valid', tok=tok, progress=False)
    return DiskLMDataLoaders.from_stores(trn, val, bs=bs, seq_len=seq_len, seed=seed, path=folder, device='cpu')

def tiny_gpt2(tok, vocab_size=None, seed=0, drop=0.1):
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=vocab_size or len(tok),
                     bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, resid_pdrop=drop, embd_pdrop=drop, attn_pdrop=drop)
    return AutoModelForCausalLM.from_config(cfg)

@pytest.fixture(scope='module')
def trained(tok, tmp_path_factory):
    "A tiny GPT-2 trained on the two repeated sentences"
    folder = tmp_path_factory.mktemp('hf_lm')
    dls = make_dls(tok, folder)
    learn = hf_lm_learner(dls, tiny_gpt2(tok))   # the tokenizer: the store's
    before = learn.validate()[0]
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(6, 1e-2)
    return folder,dls,learn,before

def test_loss_is_cross_entropy_on_loader_targets(tok, tmp_path):
    "fastai's loss on a batch equals a hand computation of cross-entropy against y, and the model's own (self-shifting) loss on the window"
    dls = make_dls(tok, tmp_path, n=20)
    learn = hf_lm_learner(dls, tiny_gpt2(tok, drop=0.), tok)
    learn.model.eval()
    x,y = dls.train.one_batch()
    x,y = torch.as_tensor(x),torch.as_tensor(y)
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    logits = learn.model.hf_model(input_ids=x).logits
    hand = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    torch.testing.assert_close(learn.loss_func(learn.model(x), y), hand)
    window = torch.cat([x, y[:, -1:]], dim=1)
    torch.testing.assert_close(learn.model.hf_model(input_ids=window, labels=window).loss, hand, rtol=1e-5, atol=1e-5)
    # what the training loop computes (no dropout here): fastai's `learn.loss` on the first training batch
    seen = []
    from fastai.callback.core import Callback, CancelFitException
    class Grab(Callback):
        def after_loss(self):
            seen.append((self.learn.loss.detach().clone(), self.xb[0].clone(), self.yb[0].clone()))
            raise CancelFitException()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr=1e-3, cbs=Grab())
    l,xb,yb = seen[0]
    lo = learn.model.hf_model(input_ids=torch.as_tensor(xb)).logits
    torch.testing.assert_close(l, F.cross_entropy(lo.reshape(-1, lo.shape[-1]), torch.as_tensor(yb).reshape(-1)), rtol=1e-5, atol=1e-5)

def test_fit_decreases_loss_and_greedy_predict_continues_corpus(tok, trained):
    folder,dls,learn,before = trained
    vals = learn.recorder.values
    assert vals[-1][1] < before - 5, (before, vals)   # from about ln(30522) = 10.3
    assert vals[-1][1] < vals[0][1]
    assert vals[-1][3] == pytest.approx(math.exp(vals[-1][1]), rel=1e-3)   # Perplexity
    assert learn.predict('the cat', n_words=5) == 'the cat sat on a mat.'
    assert learn.predict('one dog ran', n_words=4) == 'one dog ran in my park.'

def test_predict_round_trips_and_temperature(tok, trained):
    _,_,learn,_ = trained
    out = learn.predict('the cat', n_words=15)
    assert out.startswith('the cat sat')
    assert tok.decode(tok(out)['input_ids'], skip_special_tokens=True) == out
    assert learn.predict('the cat', n_words=5, temperature=1e-6) == learn.predict('the cat', n_words=5)
    torch.manual_seed(1); a = learn.predict('the', n_words=20, temperature=5.)
    torch.manual_seed(1); b = learn.predict('the', n_words=20, temperature=5.)
    assert a == b and a != learn.predict('the', n_words=20)
    with pytest.raises(ValueError, match='temperature'): learn.predict('the', temperature=-0.5)
    with pytest.raises(ValueError, match='n_words'): learn.predict('the', n_words=-1)

def test_tokenizer_from_store_and_prompt_convention(tok, trained, tmp_path):
    "Without `tokenizer=`, the store's copy is used; prompts are encoded as the store's documents, less the trailing separator"
    folder,dls,learn,_ = trained
    store = dls.train.dataset
    for i,t in enumerate(TEXTS):
        doc = store.doc(i).tolist()
        assert doc[-1] == store.doc_sep_id
        assert _prompt_ids(learn.tokenizer, t) == doc[:-1]
        assert _prompt_ids(tok, t) == doc[:-1]
    given = hf_lm_learner(dls, learn.model, tok)
    assert given.predict('the cat', n_words=8) == learn.predict('the cat', n_words=8)
    # a store of ids has no tokenizer: training works, predict asks for one
    ids = DiskLMDataset.from_token_docs([tok(t)['input_ids'] for t in TEXTS*20], tmp_path/'ids', vocab_size=len(tok), progress=False)
    nt = hf_lm_learner(DiskLMDataLoaders.from_stores(ids, bs=4, seq_len=8, device='cpu'), learn.model)
    assert nt.tokenizer is None
    with pytest.raises(ValueError, match='pass `tokenizer=`'): nt.predict('the cat')

def test_predict_crops_to_model_positions(tok, trained):
    "Generating past `n_positions` (64 here) keeps working on the last 64 tokens"
    _,_,learn,_ = trained
    out = learn.predict('the cat', n_words=80)
    assert len(tok(out, add_special_tokens=False)['input_ids']) >= 60

def test_vocab_check_names_both_sizes_and_fix(tok, tmp_path):
    dls = make_dls(tok, tmp_path, n=10)
    with pytest.raises(ValueError, match=r"500 rows but the stores use 30,522 token ids.*resize_token_embeddings\(30522\)"):
        hf_lm_learner(dls, tiny_gpt2(tok, vocab_size=500), tok)
    # ids beyond the recorded vocabulary size of a store without one: the largest id counts
    st = DiskLMDataset.from_token_docs([[1, 2, 3, 900]]*30, tmp_path/'ids', progress=False)
    sdls = DiskLMDataLoaders.from_stores(st, bs=2, seq_len=8, device='cpu')
    with pytest.raises(ValueError, match=r'900 rows .* 901 token ids .*largest token id'):
        hf_lm_learner(sdls, tiny_gpt2(tok, vocab_size=900))
    hf_lm_learner(sdls, tiny_gpt2(tok, vocab_size=901))   # fits
    with pytest.raises(ValueError, match='the tokenizer has 30,522 tokens'):
        hf_lm_learner(sdls, tiny_gpt2(tok, vocab_size=901), tok)
    with pytest.raises(TypeError, match='Hugging Face tokenizer'): hf_lm_learner(sdls, tiny_gpt2(tok, vocab_size=901), tokenizer='bert')
    with pytest.raises(TypeError, match='torch module'): hf_lm_learner(sdls, 'gpt2')

def test_splitter_and_discriminative_lrs(tok, tmp_path):
    dls = make_dls(tok, tmp_path, n=10)
    learn = hf_lm_learner(dls, tiny_gpt2(tok), tok)
    groups = hf_lm_splitter(learn.model)
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(learn.model.parameters()))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, slice(1e-5, 1e-3))
    lrs = [h['lr'] for h in learn.opt.hypers]
    assert len(lrs) == 3 and lrs[0] < lrs[1] < lrs[2]
    learn.freeze()
    emb = learn.model.get_input_embeddings().weight
    assert not emb.requires_grad and learn.model.hf_model.transformer.ln_f.weight.requires_grad

def test_lr_find_restores_weights(tok, tmp_path):
    dls = make_dls(tok, tmp_path, n=20)
    learn = hf_lm_learner(dls, tiny_gpt2(tok), tok)
    w0 = learn.model.get_input_embeddings().weight.detach().clone()
    with learn.no_bar(), learn.no_logging(): res = learn.lr_find(num_it=20, show_plot=False)
    assert 1e-7 < res.valley < 10
    torch.testing.assert_close(learn.model.get_input_embeddings().weight.detach(), w0)

def test_export_load_learner_in_fresh_process(tok, trained, tmp_path):
    "The exported learner carries the tokenizer, not the data: another process in another folder, stores deleted, predicts the same"
    folder,dls,learn,_ = trained
    src = tmp_path/'src'; shutil.copytree(folder, src)   # a copy of the stores, deleted before loading
    dls2 = DiskLMDataLoaders.from_stores(src/'train', src/'valid', bs=8, seq_len=16, path=src, device='cpu')
    learn2 = hf_lm_learner(dls2, learn.model)   # the tokenizer read from the (copied) store
    expected = [learn2.predict('the cat', n_words=12), learn2.predict('one dog', n_words=3)]
    learn2.export('gpt.pkl')
    fn = tmp_path/'deploy'/'gpt.pkl'; fn.parent.mkdir()
    shutil.move(src/'gpt.pkl', fn)
    shutil.rmtree(src)
    raw = fn.read_bytes()
    assert str(src).encode() not in raw   # no path to the data
    other = tmp_path/'elsewhere'; other.mkdir()
    code = textwrap.dedent(f"""
        import json, warnings; warnings.filterwarnings('ignore')
        from fastai.learner import load_learner
        learn = load_learner({str(fn)!r})
        print(json.dumps([type(learn).__name__, learn.predict('the cat', n_words=12), learn.predict('one dog', n_words=3)]))
    """)
    r = subprocess.run([sys.executable, '-c', code], cwd=other, capture_output=True, text=True, timeout=300, env={**os.environ, **ENV})
    assert r.returncode == 0, r.stderr[-3000:]
    name,*got = json.loads(r.stdout.strip().splitlines()[-1])
    assert name == 'HFLMLearner'
    assert got == expected
    assert not any(other.iterdir())   # nothing written where it ran
