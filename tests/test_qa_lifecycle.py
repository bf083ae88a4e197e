"`learn.export()` / `load_learner()` of QA learners: a fresh process, in another folder, with the caches and tokenizer folders deleted, answers as the learner did before export"
import json, os, shutil, subprocess, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import pytest, torch
from fastai.torch_core import set_seed
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, XLNetConfig, XLNetForQuestionAnsweringSimple
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager, configure_memory_tokens
from fastai_memstream.test_utils import make_test_xlnet_tokenizer
from fastai_memstream.squad_fastai import SquadDataLoaders, squad_learner, qa_predict, MemoryQAModel

torch.set_num_threads(1)
SRC = str(sample_data('squad-v2/dev-v2.0-subset.json'))

LOAD = '''
import json, sys, torch
torch.set_num_threads(1)
from fastai.learner import load_learner
learn = load_learner(sys.argv[1])              # nothing of fastai_memstream imported by hand: the pickle imports it
from fastai_memstream.squad_fastai import qa_predict
q,c = json.load(open(sys.argv[2]))
print(json.dumps([learn.predict((q, c)), qa_predict(learn, q, c, max_n_segs=2, null_threshold=1e9),
                  type(learn).__name__, len(learn.dls.train.feats)]))
'''

def _learner(kind, tmp):
    "A learner trained for one short epoch on a cache in `tmp/cache` (its tokenizer folder in `tmp/tok`)"
    if kind == 'bert':
        tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
        shutil.copytree(sample_data('bert-base-uncased'), tmp/'tok')
        tok = AutoTokenizer.from_pretrained(str(tmp/'tok'))
    else:
        tok = make_test_xlnet_tokenizer(tmp/'tok'); configure_memory_tokens(tok, 2)
    cm = ChunkedCacheManager(tmp/'cache')
    StreamingSquadProcessor(tok, max_seq_length=96, doc_stride=32, max_query_length=32, progress=False, verbose=False).process_dataset_streaming(
        SRC, 'validation', max_examples=24, cache_manager=cm, name='squad_v2')
    set_seed(0)
    mem = kind != 'bert'
    dls = SquadDataLoaders.from_cache(cm.cache_dir, 'squad_v2', train_split='validation', valid_split=None, valid_pct=0.25, seed=0, bs=8,
                                      time_step_major=mem, device='cpu')
    if mem:
        f = dls.train.feats
        model = MemoryQAModel(XLNetForQuestionAnsweringSimple(XLNetConfig(d_model=32, n_layer=1, n_head=2, d_inner=64, vocab_size=len(tok))),
                              f.mem_read_ids, f.mem_write_ids, gated=True)
    else: model = BertForQuestionAnswering(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=len(tok)))
    learn = squad_learner(dls, model)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 3e-3)
    return learn

@pytest.mark.parametrize('kind', ['bert', 'xlnet_memory'])
def test_export_load_predict_in_a_fresh_process(kind, tmp_path):
    learn = _learner(kind, tmp_path)
    f = learn.dls.valid.feats
    ex = f.example(f.doc_example_ids[0])
    q,c = ex['question'],ex['context'] + ' ' + f.example(f.doc_example_ids[-1])['context']   # several windows
    before = [learn.predict((q, c)), qa_predict(learn, q, c, max_n_segs=2, null_threshold=1e9)]
    assert before[0]['n_windows'] > 1 and before[1]['answer'] != ''
    (tmp_path/'export').mkdir()
    learn.export(tmp_path/'export'/'qa.pkl')
    assert str(tmp_path/'cache').encode() not in (tmp_path/'export'/'qa.pkl').read_bytes()   # no cache path inside
    shutil.rmtree(tmp_path/'cache'); shutil.rmtree(tmp_path/'tok')                             # nothing left to reopen
    (tmp_path/'qc.json').write_text(json.dumps([q, c]))
    other = tmp_path/'elsewhere'; other.mkdir()
    r = subprocess.run([sys.executable, '-c', LOAD, str(tmp_path/'export'/'qa.pkl'), str(tmp_path/'qc.json')], cwd=other,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got[2:] == ['SquadLearner', 0]                                                      # empty loaders
    for g,b in zip(got[:2], before):
        assert (g['answer'], g['n_windows']) == (b['answer'], b['n_windows'])
        assert g['null_score_diff'] == pytest.approx(b['null_score_diff'], abs=1e-4)
    assert os.listdir(other) == []                                                             # loading wrote nothing

def test_exported_tokenizer_pickles_with_its_memory_tokens(tmp_path):
    "The QA tokenizer inside the export: a fast tokenizer with added memory tokens survives pickling"
    import pickle
    tok = make_test_xlnet_tokenizer(tmp_path/'tok'); configure_memory_tokens(tok, 3)
    t2 = pickle.loads(pickle.dumps(tok))
    s = 'Where is [MEM_READ_0] Normandy [MEM_WRITE_2]?'
    assert t2(s)['input_ids'] == tok(s)['input_ids'] and len(t2) == len(tok)
    assert t2.convert_tokens_to_ids('[MEM_WRITE_2]') == tok.convert_tokens_to_ids('[MEM_WRITE_2]')
