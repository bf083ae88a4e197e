"The QA Learner's everyday calls: `get_preds` (stackable, with_input/with_decoded/with_loss), `show_results`, `show_batch`, and the checks made before training"
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import numpy as np, pytest, torch
from fastai.data.core import DataLoaders, Datasets
from fastai.torch_core import set_seed
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, XLNetConfig, XLNetForQuestionAnsweringSimple
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager, configure_memory_tokens
from fastai_memstream.test_utils import make_test_xlnet_tokenizer
from fastai_memstream.squad_fastai import (SquadFeatures, SquadDataLoaders, SquadDataLoader, SquadFeatureGetter, SquadPostProcessor,
                                           squad_learner, MemoryQAModel, TimeStepMajorDataLoader)

torch.set_num_threads(1)
SRC = str(sample_data('squad-v2/dev-v2.0-subset.json'))
L = 96

def _cache(tok, folder, n=24):
    cm = ChunkedCacheManager(folder)
    StreamingSquadProcessor(tok, max_seq_length=L, doc_stride=32, max_query_length=32, progress=False, verbose=False).process_dataset_streaming(
        SRC, 'validation', max_examples=n, cache_manager=cm, name='squad_v2')
    return SquadFeatures.from_cache(cm.cache_dir, 'squad_v2', 'validation')

@pytest.fixture(scope='module')
def feats(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('qapreds')
    btok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
    xtok = make_test_xlnet_tokenizer(tmp/'xtok'); configure_memory_tokens(xtok, 2)
    return _cache(btok, tmp/'bert'), btok, _cache(xtok, tmp/'xlnet'), xtok

def _xlnet(tok, mem=None):
    m = XLNetForQuestionAnsweringSimple(XLNetConfig(d_model=32, n_layer=1, n_head=2, d_inner=64, vocab_size=len(tok)))
    return m if mem is None else MemoryQAModel(m, mem.mem_read_ids, mem.mem_write_ids)

@pytest.fixture
def shown(monkeypatch):
    "The tables `display_df` would display"
    import fastai.torch_core
    out = []
    monkeypatch.setattr(fastai.torch_core, 'display_df', out.append)
    return out

def test_get_preds_left_padded_windows_stack_and_match_the_metrics(feats):
    "XLNet pads on the left: rows are re-aligned to window positions, padded to max_seq_length, and post-process to the metrics' answers"
    _,_,xf,xtok = feats
    set_seed(0)
    learn = squad_learner(SquadDataLoaders.from_features(xf, xf, bs=8, device='cpu'), _xlnet(xtok))
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 3e-3)
        learn.validate()
        metric_preds = dict(learn.metrics[0].evaluator.pp.preds)
        inp,(sl,el),(ts,te,fi),(ds,de),losses = learn.get_preds(with_input=True, with_decoded=True, with_loss=True)
        loss = learn.validate()[0]
    n = len(xf)
    assert sl.shape == el.shape == (n, L) and torch.is_tensor(sl)
    assert torch.equal(fi, torch.arange(n))                                                   # the valid loader's order
    lens = torch.tensor([len(o) for o in xf.eval_rows(fi)['input_ids']])
    assert torch.equal(torch.isinf(sl).sum(1), L - lens)                                      # -inf beyond each window only
    assert torch.equal(ts, torch.tensor(xf.train_rows(fi)['start_positions']))                # the cache's (window) positions
    ids,am,tt = inp
    assert ids.shape == (n, L) and torch.equal(am.sum(1), lens)
    assert torch.equal(ids[3, :lens[3]], torch.tensor(xf.train_rows([3])['input_ids'][0]))     # token j of the window at column j
    assert torch.equal(ds, sl.argmax(1)) and torch.equal(de, el.argmax(1))
    assert losses.shape == (n,) and losses.mean().item() == pytest.approx(loss, abs=1e-4)
    pp = SquadPostProcessor(xf); pp.add(sl, el, fi, padding_side='right')
    assert pp.finalize() == metric_preds

def test_show_results_and_show_batch_display_once(feats, shown):
    bf,btok,xf,xtok = feats
    dls = SquadDataLoaders.from_features(bf, valid_pct=0.25, seed=0, bs=8, device='cpu')
    learn = squad_learner(dls, BertForQuestionAnswering(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                                   intermediate_size=64, vocab_size=len(btok))))
    with learn.no_bar(), learn.no_logging(): assert learn.show_results(max_n=3) is None
    assert list(shown[-1].columns) == ['question', 'context', 'answer', 'prediction'] and len(shown[-1]) == 3
    assert dls.show_batch(max_n=2) is None and len(shown) == 2                                # displayed, not also returned
    df = dls.train.show_batch(max_n=2, show=False)
    assert list(df.columns) == ['question', 'context', 'answer'] and len(df) == 2
    tsm = TimeStepMajorDataLoader(xf, bs=4)
    assert tsm.show_batch(max_n=2) is None and len(tsm.show_batch(max_n=2, show=False)) == 2 and len(shown) == 3

def test_get_preds_and_show_results_on_time_step_major_loaders(feats, shown):
    _,_,xf,xtok = feats
    dls = SquadDataLoaders.from_features(xf, xf, bs=4, time_step_major=True, device='cpu')
    learn = squad_learner(dls, _xlnet(xtok, xf))
    with learn.no_bar(), learn.no_logging():
        (sl,el),(ts,te,fi) = learn.get_preds()
        learn.show_results(max_n=2)
    assert sl.shape == (4*len(dls.valid), L)                                                 # one row per slot and time step
    assert sorted(fi[fi >= 0].tolist()) == list(range(len(xf)))                              # every window once; -1: an empty slot
    assert torch.isinf(sl[fi < 0]).all() and not torch.isinf(sl[fi >= 0][:, 0]).any()
    assert 'prediction' in shown[-1].columns and 'time_step' in shown[-1].columns

def test_checks_before_training(feats):
    "A too small embedding, or train/valid features from different tokenizers: a ValueError naming both sides, before any step"
    bf,btok,xf,xtok = feats
    dls = SquadDataLoaders.from_features(bf, valid_pct=0.25, seed=0, bs=8, device='cpu')
    small = BertForQuestionAnswering(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=1000))
    with pytest.raises(ValueError, match=r'1000 input embeddings.*resize_token_embeddings'): squad_learner(dls, small)
    with pytest.raises(ValueError, match='differ in tokenizer_fingerprint'): SquadDataLoaders.from_features(bf, xf, device='cpu')
    with pytest.raises(ValueError, match='differ in tokenizer_fingerprint'):
        SquadDataLoaders.from_features(xf, bf, time_step_major=True, device='cpu')
    mixed = DataLoaders(dls.train, SquadDataLoader(Datasets([0, 1], tfms=[[SquadFeatureGetter(xf)]]), feats=xf, bs=2), device='cpu')
    with pytest.raises(ValueError, match='the train and valid features differ'): squad_learner(mixed, _xlnet(xtok))
    before_mem = XLNetForQuestionAnsweringSimple(XLNetConfig(d_model=32, n_layer=1, n_head=2, d_inner=64, vocab_size=len(xtok) - 4))
    with pytest.raises(ValueError, match='input embeddings'):                                 # sized before the memory tokens were added
        squad_learner(SquadDataLoaders.from_features(xf, xf, device='cpu'), before_mem)
