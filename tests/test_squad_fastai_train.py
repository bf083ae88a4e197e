"Training tiny QA models (built from configs) on the shipped SQuAD v2 subset lowers the loss; workers; metrics run"
import os, pickle
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import numpy as np, pytest, torch
from fastai.data.core import DataLoaders
from fastai.torch_core import set_seed
from fastai.callback.core import Callback
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, XLNetConfig, XLNetForQuestionAnsweringSimple
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager, configure_memory_tokens
from fastai_memstream.test_utils import make_test_xlnet_tokenizer
from fastai_memstream.squad_fastai import *

torch.set_num_threads(1)
N_EX = 60

@pytest.fixture(scope='module')
def caches(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('sqf')
    src = str(sample_data('squad-v2/dev-v2.0-subset.json'))
    btok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
    cm_b = ChunkedCacheManager(tmp/'bert')
    StreamingSquadProcessor(btok, max_seq_length=128, doc_stride=32, progress=False, verbose=False).process_dataset_streaming(
        src, 'validation', max_examples=N_EX, cache_manager=cm_b, name='squad_v2')
    xtok = make_test_xlnet_tokenizer(tmp/'xtok'); configure_memory_tokens(xtok, 2)
    cm_x = ChunkedCacheManager(tmp/'xlnet')
    StreamingSquadProcessor(xtok, max_seq_length=96, doc_stride=32, max_query_length=32, progress=False, verbose=False).process_dataset_streaming(
        src, 'validation', max_examples=N_EX, cache_manager=cm_x, name='squad_v2')
    return (SquadFeatures.from_cache(cm_b.cache_dir, 'squad_v2', 'validation'), btok,
            SquadFeatures.from_cache(cm_x.cache_dir, 'squad_v2', 'validation'), xtok)

def _fit_and_compare(learn, epochs, lr):
    "Loss on the fixed (unshuffled) training subset before and after training"
    with learn.no_bar(), learn.no_logging():
        before = learn.validate(dl=learn.dls.valid)[0]
        learn.fit_one_cycle(epochs, lr)
        after = learn.validate(dl=learn.dls.valid)[0]
    return before,after

def test_bert_training_lowers_loss(caches):
    bf,btok,_,_ = caches
    set_seed(0)
    dls = SquadDataLoaders.from_features(bf, bf, bs=16, device='cpu')   # valid = the same fixed subset, unshuffled
    m = BertForQuestionAnswering(BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, vocab_size=len(btok)))
    learn = squad_learner(dls, m)
    before,after = _fit_and_compare(learn, 6, 3e-3)
    print(f"BERT loss {before:.3f} -> {after:.3f}")
    assert after < 0.7*before, (before, after)
    r = learn.validate()
    assert len(r) == 1 + 6 and all(v is not None for v in r)                 # loss + the six SQuAD scores

def test_xlnet_memory_training_lowers_loss(caches):
    _,_,xf,xtok = caches
    set_seed(0)
    dls = SquadDataLoaders.from_features(xf, xf, bs=8, time_step_major=True, device='cpu')
    m = MemoryQAModel(XLNetForQuestionAnsweringSimple(XLNetConfig(d_model=64, n_layer=2, n_head=2, d_inner=128, vocab_size=len(xtok))),
                      xf.mem_read_ids, xf.mem_write_ids, gated=True)
    learn = squad_learner(dls, m)
    before,after = _fit_and_compare(learn, 4, 3e-3)
    print(f"XLNet+memory loss {before:.3f} -> {after:.3f}")
    assert after < 0.7*before, (before, after)
    assert learn.model.init_memory.grad is not None                          # the learned initial memory is trained

def test_xlnet_plain_and_tuple_inputs(caches):
    _,_,xf,xtok = caches
    dls = SquadDataLoaders.from_features(xf, valid_pct=0.25, seed=1, bs=16, as_dict=False, device='cpu')
    x = dls.one_batch()[0]
    assert isinstance(x, tuple) and len(x) == 3
    m = XLNetForQuestionAnsweringSimple(XLNetConfig(d_model=64, n_layer=2, n_head=2, d_inner=128, vocab_size=len(xtok)))
    learn = squad_learner(dls, m)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert np.isfinite(learn.recorder.values[-1][0])

def test_workers_give_the_same_batches(caches):
    bf,_,xf,_ = caches
    assert len(pickle.dumps(bf)) < 500                                       # workers get the path, not the data
    dls0 = SquadDataLoaders.from_features(bf, bf, bs=8, device='cpu', num_workers=0)
    dls2 = SquadDataLoaders.from_features(bf, bf, bs=8, device='cpu', num_workers=2)
    for a,b in zip(dls0.valid, dls2.valid, strict=True):
        assert torch.equal(a[0]['input_ids'], b[0]['input_ids']) and torch.equal(a[-1], b[-1])
    t0,t2 = TimeStepMajorDataLoader(xf, bs=4, num_workers=0),TimeStepMajorDataLoader(xf, bs=4, num_workers=2)
    for a,b in zip(t0, t2, strict=True):
        assert torch.equal(a[-1], b[-1]) and torch.equal(a[0]['time_step'], b[0]['time_step'])
    seen = sorted(int(i) for b in TimeStepMajorDataLoader(xf, bs=4, shuffle=True, num_workers=2) for i in b[-1] if i >= 0)
    assert seen == list(range(len(xf)))

def test_capped_windows_are_scored_as_they_finish(caches, caplog):
    "With `max_n_segs` on the loader, an example is finished after its last yielded window, not left pending until the end"
    _,_,xf,xtok = caches
    assert xf.doc_lengths.max() > 2
    dls = SquadDataLoaders.from_features(xf, xf, bs=8, time_step_major=True, max_n_segs=2, device='cpu')
    m = MemoryQAModel(XLNetForQuestionAnsweringSimple(XLNetConfig(d_model=32, n_layer=1, n_head=2, d_inner=64, vocab_size=len(xtok))),
                      xf.mem_read_ids, xf.mem_write_ids)
    learn = squad_learner(dls, m)
    pending = []
    class Watch(Callback):
        order = 100   # after the metrics fed the post-processor
        def after_batch(self):
            pp = learn.metrics[0].evaluator.pp
            if pp is not None: pending.append(len(pp.pending))
    with caplog.at_level('WARNING', logger='fastai_memstream'), learn.no_bar(), learn.no_logging():
        r = learn.validate(cbs=[Watch()])
    assert max(pending) <= 8, max(pending)                                   # at most the documents of one batch in flight
    assert 'only some of their windows' not in caplog.text
    assert set(learn.metrics[0].evaluator.pp.exact) == set(xf.doc_example_ids)                  # every example scored

def test_trainer_processes_the_cache_and_loads_a_local_model(tmp_path):
    "The guide's API with a local model folder and no cache yet: the trainer runs the streaming processor, trains and saves"
    btok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
    BertForQuestionAnswering(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                        vocab_size=len(btok))).save_pretrained(tmp_path/'model')
    btok.save_pretrained(tmp_path/'model')
    cfg = TrainingConfig(cache_dir=str(tmp_path/'cache'), dataset_name=str(sample_data('squad-v2/dev-v2.0-subset.json')),
                         train_split='validation', eval_split='validation', model_name_or_config=str(tmp_path/'model'),
                         max_train_samples=12, max_eval_samples=12, num_epochs=1, train_batch_size=4, max_seq_length=128, doc_stride=32,
                         output_dir=str(tmp_path/'out'), progress=False)
    trainer = XLNetRecurrentTrainer(cfg)
    learn = trainer.train()
    assert type(learn.model.model).__name__ == 'BertForQuestionAnswering'
    assert ChunkedCacheManager(tmp_path/'cache').cache_exists(cfg.dataset_name, 'validation')
    assert learn.dls.valid.feats.n_docs == 12
    assert set(trainer.metrics) >= {'exact', 'f1', 'valid_loss'} and (tmp_path/'out'/'model.safetensors').exists()
