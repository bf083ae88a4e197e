"The text builders under `torchrun --standalone --nproc_per_node=2` (gloo): each rank tokenizes its share and writes its shard; store identical to one process"
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from fastai_memstream.store import DiskLMDataset

pytest.importorskip('transformers')
HERE = Path(__file__).parent
SCRIPT = HERE/'_text_dist_build.py'
sys.path.insert(0, str(HERE))
import _text_dist_build as tdb

TORCHRUN = Path(sys.executable).parent/'torchrun'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1',
       'TOKENIZERS_PARALLELISM': 'false', 'PYTHONWARNINGS': 'ignore'}

def torchrun(root, out, which=None):
    out.mkdir(exist_ok=True)
    args = [str(TORCHRUN), '--standalone', '--nproc_per_node=2', str(SCRIPT), str(root), str(out)] + ([which] if which else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=240, env=ENV)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    res = [json.loads((out/f'rank{r}.json').read_text()) for r in (0, 1)]
    for r in res:
        for k,v in r.items(): assert 'error' not in v or k.startswith('bad'), (k, v.get('tb'))
    return res

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    tdb.write_corpus(root)
    return root, torchrun(root, root/'out1')

def same(a:DiskLMDataset, b:DiskLMDataset):
    "Same tokens, documents, vocabulary, counts (a sharded store also counts `max_id`) and parameters"
    assert (a.n_docs, a.total_tokens, a.dtype, a.vocab_size) == (b.n_docs, b.total_tokens, b.dtype, b.vocab_size)
    assert a.vocab == b.vocab
    np.testing.assert_array_equal(a.data[:], b.data[:])
    np.testing.assert_array_equal(np.asarray(a.doc_offsets), np.asarray(b.doc_offsets))
    drop = lambda c: {k:v for k,v in c.items() if k != 'max_id'}
    assert drop(a.meta['counts']) == drop(b.meta['counts'])
    pa,pb = dict(a.meta['params']),dict(b.meta['params'])
    if 'corpus_counts' in pa: pa['corpus_counts'],pb['corpus_counts'] = drop(pa['corpus_counts']),drop(pb['corpus_counts'])
    assert pa == pb
    a.verify()

NAMES = ['list_spacy', 'list_workers', 'gen_blocks', 'vocab_given', 'df_two_cols', 'folder', 'hf_tok', 'hf_dataset']

@pytest.mark.parametrize('name', NAMES)
def test_identical_to_one_process(built, name, tmp_path):
    root, res = built
    assert res[0][name] == res[1][name]   # every rank returned the same opened store
    ds = DiskLMDataset(root/name)
    assert res[0][name]['built'] and ds.n_shards > 1 and ds.meta['format_version'] == 2
    assert all(s['n_docs'] > 0 for s in ds.meta['shards'][:2])   # both ranks wrote documents
    one = tdb.builds(root)[name](tmp_path/'one', distributed=False)
    assert one.n_shards == 1
    same(ds, one)
    if name.startswith('hf_tok'):
        assert ds.hf_tokenizer()('w1 w2')['input_ids'] == one.hf_tokenizer()('w1 w2')['input_ids']
    if name == 'gen_blocks': assert ds.n_shards == 9 and [s['first_doc'] for s in ds.meta['shards'][:3]] == [0, 7, 14]   # blocks of 7, dealt round-robin

def test_vocabulary_ties_and_cut(built):
    "The counts have ties at the `max_vocab` cut: the agreed vocabulary is still fastai's `make_vocab` over all the texts"
    from collections import Counter
    from fastai.text.all import BaseTokenizer, Tokenizer, make_vocab
    root, _ = built
    tk = Tokenizer(BaseTokenizer())
    cnt = Counter(t for x in tdb.texts() for t in tk(x))
    assert sorted(cnt.values()).count(cnt.most_common(30)[-1][1]) > 1
    assert DiskLMDataset(root/'list_workers').vocab == make_vocab(cnt, min_freq=1, max_vocab=30)

@pytest.mark.parametrize('name', ['df_splits', 'hf_tok_splits'])
def test_splits_identical(built, name, tmp_path):
    root, res = built
    assert res[0][name] == res[1][name]
    one = tdb.builds(root)[name](tmp_path/'one', distributed=False)
    for n in one: same(DiskLMDataset(root/name/n), one[n])
    assert not (root/name/'.corpus').exists()   # the scratch corpus store is gone, as in one process

def test_dataloaders_from_df(built, tmp_path):
    "`DiskLMDataLoaders.from_df` under torchrun (splits= through the ranks) gives the stores it builds in one process"
    from fastai.text.all import BaseTokenizer
    from fastai_memstream.lm import DiskLMDataLoaders
    import pandas as pd
    root, res = built
    t = tdb.texts()
    one = DiskLMDataLoaders.from_df(pd.DataFrame({'text': t, 'b': t[::-1]}), tmp_path/'one', text_col='text', valid_pct=0.25, seed=3,
                                    tok_tfm=BaseTokenizer(), min_freq=1, n_workers=0, bs=2, seq_len=5, progress=False)
    same(DiskLMDataset(root/'dls_from_df'/'train'), one.train.dataset)
    same(DiskLMDataset(root/'dls_from_df'/'valid'), one.valid.dataset)

def test_rerun_reuses(built):
    "A second distributed call with the same texts reopens the committed stores on every rank"
    root, _ = built
    res = torchrun(root, root/'out2', 'list_spacy,hf_tok,df_splits')
    for r in res:
        assert r['list_spacy']['built'] is False and r['hf_tok']['built'] is False
        assert r['df_splits']['train']['built'] is False and r['df_splits']['valid']['built'] is False

@pytest.mark.parametrize('name', ['bad_text', 'bad_text_hf'])
def test_failing_rank_named(built, name):
    "A text that is not a str in rank 1's share: rank 1 names it, rank 0 fails at once naming rank 1 (no hang), nothing is committed"
    root, res = built
    assert res[1][name]['error'] == 'TypeError' and 'text 50 is a NoneType' in res[1][name]['msg']
    assert res[0][name]['error'] == 'RankFailedError' and 'rank 1 failed' in res[0][name]['msg'] and 'text 50' in res[0][name]['msg']
    assert not (root/name/'manifest.json').exists()
