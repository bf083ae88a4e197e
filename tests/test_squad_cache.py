"""SQuAD feature cache: input layouts, fingerprint (never reuse a cache built with other settings), memory tokens, the
extension hook, worker processes, two shards in two processes, resume after SIGKILL, flat peak RSS when the input grows 8x
(fresh processes), memory-limit logging, the Hub workflow on local folders, and the benchmark's smoke run."""
import os, sys, json, time, signal, shutil, subprocess, textwrap, logging, copy
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
from pathlib import Path
import numpy as np, pytest, datasets
import pyarrow as pa, pyarrow.parquet as pq
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data, CacheIncompleteError, MANIFEST
import fastai_memstream.squad as squad, fastai_memstream.squad_read as squad_read
from fastai_memstream.squad import (StreamingSquadProcessor, ChunkedCacheManager, configure_memory_tokens, make_test_xlnet_tokenizer,
                                    upload_processed_dataset_to_hub, load_dataset_from_hub)
from test_squad_oracle import squad_rows
from run_qa_recipe import repeated_rows

ROOT = Path(__file__).resolve().parents[1]
SQUAD = sample_data('squad-v2/dev-v2.0-subset.json')

@pytest.fixture(scope='module')
def bert(): return AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))

@pytest.fixture(scope='module')
def xlnet(tmp_path_factory): return make_test_xlnet_tokenizer(tmp_path_factory.mktemp('xlnet'))

def P(tok, *args, **kw): return StreamingSquadProcessor(tok, *args, progress=False, verbose=False, **kw)
def table(ds): return ds.with_format('arrow')[:]

def write_jsonl(fn, rows):
    with open(fn, 'w', encoding='utf-8') as f:
        for r in rows: f.write(json.dumps(r) + '\n')
    return fn

def copies(k):
    "The sample `k` times with unique ids and distinct contexts (answer starts shifted)"
    return list(repeated_rows(squad_rows(), k))

def run_py(code, **kw):
    "Run `code` in a fresh interpreter (cwd: the repo, so tests/ imports work)"
    env = {**os.environ, 'PYTHONPATH': f"{ROOT/'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)

# ---- input layouts -------------------------------------------------------------------------------------------------

def test_all_layouts_give_the_same_features(bert, tmp_path):
    rows = squad_rows()
    ref,_ = P(bert, 128, 32).featurize(rows)
    ref = table(ref)
    flat = [dict(r) for r in rows]
    (tmp_path/'list.json').write_text(json.dumps(flat))
    (tmp_path/'data.json').write_text(json.dumps({'version': 'x', 'data': flat}))
    write_jsonl(tmp_path/'rows.jsonl', flat)
    write_jsonl(tmp_path/'rows_jsonl.json', flat)  # JSON Lines in a .json file, as datasets' json loader accepts
    pq.write_table(pa.Table.from_pylist(flat), tmp_path/'rows.parquet', row_group_size=50)
    (tmp_path/'folder').mkdir()
    write_jsonl(tmp_path/'folder'/'validation-00000.jsonl', flat[:100]); write_jsonl(tmp_path/'folder'/'validation-00001.jsonl', flat[100:])
    write_jsonl(tmp_path/'folder'/'train.jsonl', flat[:3])
    srcs = [SQUAD, tmp_path/'list.json', tmp_path/'data.json', tmp_path/'rows.jsonl', tmp_path/'rows_jsonl.json',
            tmp_path/'rows.parquet', tmp_path/'folder', str(tmp_path/'rows.jsonl'), flat, datasets.Dataset.from_list(flat), iter(flat)]
    for i,src in enumerate(srcs):
        cm = ChunkedCacheManager(tmp_path/f'c{i}', chunk_size=40)
        p = P(bert, 128, 32, streaming_chunk_size=60)
        if isinstance(src, type(iter([]))):  # a generator can't be fingerprinted: rebuilt, never reused
            with pytest.warns(UserWarning, match='random fingerprint'): p.process_dataset_streaming(src, 'validation', cache_manager=cm, name='sq')
        else: p.process_dataset_streaming(src, 'validation', cache_manager=cm, name='sq')
        assert table(cm.load('sq', 'validation')).equals(ref), src
        assert p.stats['examples'] == 208 and cm.load_examples('sq', 'validation')['example_id'] == [r['id'] for r in rows]

def test_hub_id_dispatch(bert, monkeypatch, tmp_path, caplog):
    "A name that is not a local path is a Hub id, opened with datasets.load_dataset(name, split=..., streaming=True)"
    calls = []
    def fake_load(name, split=None, streaming=False, **kw):
        calls.append((name, split, streaming))
        return datasets.IterableDataset.from_generator(squad_rows)
    monkeypatch.setattr(squad_read, 'load_dataset', fake_load)
    cm = ChunkedCacheManager(tmp_path)
    p = StreamingSquadProcessor(bert, progress=False)
    with caplog.at_level(logging.INFO, logger='fastai_memstream'):
        n = p.process_dataset_streaming('rajpurkar/squad_v2', 'validation', max_examples=50, cache_manager=cm)
    assert calls == [('rajpurkar/squad_v2', 'validation', True)]
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith('📚 Loading dataset in streaming mode: rajpurkar/squad_v2 (validation)') for m in msgs), msgs
    issue = ('examples', 'features', 'answerable', 'unanswerable', 'answers_repaired', 'answers_unplaced', 'questions_truncated', 'records_rejected')
    assert set(issue) <= set(p.stats) and p.stats['examples'] == 50 and p.stats['features'] == n
    assert p.stats['answerable'] + p.stats['unanswerable'] == 50 and {k: p.stats[k] for k in issue} == {k: cm.manifest('rajpurkar/squad_v2', 'validation')['counts'][k] for k in issue}
    assert len(cm.load('rajpurkar/squad_v2', 'validation')) == n and cm.split_dir('rajpurkar/squad_v2', 'validation').parent.name == 'rajpurkar--squad_v2'
    assert cm.manifest('rajpurkar/squad_v2', 'validation')['counts']['examples'] == 50
    def offline(*a, **k): raise ConnectionError('no network')
    monkeypatch.setattr(squad_read, 'load_dataset', offline)
    with pytest.raises(ConnectionError) as e: P(bert).process_dataset_streaming('squad_v2')
    assert 'check the path' in ''.join(getattr(e.value, '__notes__', []))

# ---- fingerprint ---------------------------------------------------------------------------------------------------

def test_fingerprint_never_reuses_another_setting(bert, xlnet, tmp_path):
    src = tmp_path/'squad.json'
    shutil.copy(SQUAD, src)
    cm = ChunkedCacheManager(tmp_path/'c')
    def build(tok, *a, mx=30, obr='raise', mql=64, **kw):
        p = P(tok, *a, on_bad_record=obr, max_query_length=mql)
        p.process_dataset_streaming(src, 'validation', max_examples=mx, cache_manager=cm, **kw)
        return cm.manifest(src, 'validation')
    m0 = build(bert, 128, 32)
    assert build(bert, 128, 32)['created'] == m0['created']  # same settings: reused, not rebuilt
    bert2 = copy.deepcopy(bert); bert2.add_tokens(['normandyx'])
    mem = copy.deepcopy(bert); configure_memory_tokens(mem, 2)
    fps = {m0['fingerprint']}
    for what,(tok,a,kw) in {'tokenizer': (xlnet, (128, 32), {}), 'vocabulary': (bert2, (128, 32), {}), 'memory': (mem, (128, 32), {}),
                            'max_seq_length': (bert, (120, 32), {}), 'doc_stride': (bert, (128, 40), {}),
                            'max_n_segs': (bert, (128, 32), {'max_n_segs': 1}), 'max_query_length': (bert, (128, 32), {'mql': 20}),
                            'max_examples': (bert, (128, 32), {'mx': 31}), 'on_bad_record': (bert, (128, 32), {'obr': 'skip'})}.items():
        m = build(tok, *a, **kw)
        assert m['fingerprint'] not in fps, what
        fps.add(m['fingerprint'])
        if what == 'max_n_segs': assert m['params']['max_n_segs'] == 1 and all(f['segment_index'] == 0 for f in cm.load(src, 'validation'))
    m1 = build(bert, 128, 32)
    assert m1['fingerprint'] == m0['fingerprint']
    time.sleep(0.01); src.write_text(src.read_text())  # same bytes, new modification time: the same input, the cache is reused
    assert build(bert, 128, 32)['created'] == m1['created']
    st = src.stat()  # edited in place keeping size and modification time (`touch -d`, `cp -p` do this): a new input
    txt = src.read_text(); i = txt.index('Normandy')
    src.write_text(txt[:i] + 'Normandx' + txt[i+8:]); os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert src.stat().st_size == st.st_size and src.stat().st_mtime_ns == st.st_mtime_ns
    assert build(bert, 128, 32)['fingerprint'] not in fps
    assert cm.manifest(src, 'validation')['params']['tokenizer_fingerprint'] == m0['params']['tokenizer_fingerprint']

def test_tokenizer_fingerprint_stable_and_sensitive(bert, xlnet, tmp_path):
    """Same tokenizer: same fingerprint, after being called with truncation/padding and after a save/load round trip; another
    vocabulary of the same size, another normalizer or another padding side: another fingerprint"""
    fp = squad._tokenizer_fingerprint
    tok = copy.deepcopy(bert); f0 = fp(tok)
    tok('Where?', 'In Normandy.', truncation='only_second', max_length=64, stride=16, padding='max_length', return_overflowing_tokens=True)
    assert fp(tok) == f0  # calling a tokenizer changes its Rust truncation/padding state, which must not miss the cache
    tok.save_pretrained(tmp_path/'b'); assert fp(AutoTokenizer.from_pretrained(str(tmp_path/'b'))) == f0
    xl = copy.deepcopy(xlnet); xl.save_pretrained(tmp_path/'x'); assert fp(AutoTokenizer.from_pretrained(str(tmp_path/'x'))) == fp(xlnet)
    def variant(name, edit, **kw):
        "The shipped BERT tokenizer with its tokenizer.json edited"
        d = tmp_path/name; shutil.copytree(sample_data('bert-base-uncased'), d)
        tj = json.loads((d/'tokenizer.json').read_text(encoding='utf-8')); edit(tj)
        (d/'tokenizer.json').write_text(json.dumps(tj), encoding='utf-8')
        return AutoTokenizer.from_pretrained(str(d), **kw)
    def swap(tj):
        v = tj['model']['vocab']; v['normandy'],v['france'] = v['france'],v['normandy']
    same = variant('same', lambda tj: None)
    swapped = variant('swapped', swap)
    cased = variant('cased', lambda tj: tj['normalizer'].update(lowercase=False), do_lower_case=False)
    left = copy.deepcopy(same); left.padding_side = 'left'
    assert fp(same) == f0 and swapped.convert_tokens_to_ids('normandy') == bert.convert_tokens_to_ids('france')
    assert cased.tokenize('Rollo') != bert.tokenize('Rollo')
    assert len(swapped) == len(same) and len({fp(same), fp(swapped), fp(cased), fp(left)}) == 4

# ---- memory tokens -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('which', ['bert', 'xlnet'])
def test_memory_tokens(which, request, tmp_path):
    tok = copy.deepcopy(request.getfixturevalue(which))
    n0 = len(tok)
    cfg = configure_memory_tokens(tok, 4)
    assert len(tok) == n0 + 8 and configure_memory_tokens(tok, 4) == cfg and len(tok) == n0 + 8  # idempotent
    rd,wr = cfg['mem_read_ids'],cfg['mem_write_ids']
    assert tok.convert_ids_to_tokens(rd) == [f'[MEM_READ_{i}]' for i in range(4)] and tok.convert_ids_to_tokens(wr)[-1] == '[MEM_WRITE_3]'
    cm = ChunkedCacheManager(tmp_path)
    p = P(tok, 128, 32)
    assert p.n_mem == 4
    p.process_dataset_streaming(SQUAD, 'validation', cache_manager=cm)
    ds,m = cm.load(SQUAD, 'validation'),cm.manifest(SQUAD, 'validation')
    assert m['params']['mem_read_ids'] == rd and m['params']['mem_write_ids'] == wr
    assert cm.load_tokenizer(SQUAD, 'validation').convert_tokens_to_ids('[MEM_WRITE_0]') == wr[0]
    qt = 0 if p.question_first else 1
    plain = P(request.getfixturevalue(which), 128 - 8, 32)  # same windows without the 8 memory tokens
    ref,_ = plain.featurize(squad_rows())
    assert len(ref) == len(ds)
    for f,r in zip(ds, ref):
        ids,tt,off = np.array(f['input_ids']),np.array(f['token_type_ids']),np.array(f['offset_mapping'])
        assert len(ids) <= 128
        ir,iw = np.flatnonzero(np.isin(ids, rd)),np.flatnonzero(np.isin(ids, wr))
        assert ids[ir].tolist() == rd and ids[iw].tolist() == wr  # all of them, in order i = 0..n-1
        assert (tt[ir] == qt).all() and (tt[iw] == 1 - qt).all() and (off[ir] == -1).all() and (off[iw] == -1).all()
        ctx = np.flatnonzero(off[:, 0] >= 0)
        q = np.flatnonzero((tt == qt) & (off[:, 0] < 0) & ~np.isin(ids, rd + wr + tok.all_special_ids))
        assert ir.max() < q.min() and iw.min() == ctx.max() + 1  # reads open the question, writes close the context window
        keep = ~np.isin(ids, rd + wr)
        assert ids[keep].tolist() == r['input_ids'] and off[keep].tolist() == r['offset_mapping']
        shift = lambda i: i - int((~keep[:i]).sum())
        assert shift(f['start_positions']) == r['start_positions'] and shift(f['end_positions']) == r['end_positions']

# ---- extension hook, workers ---------------------------------------------------------------------------------------

class WithLength(StreamingSquadProcessor):
    def _process_single_example(self, example, max_n_segs=None):
        feats = super()._process_single_example(example, max_n_segs)
        for f in feats: f['n_context_tokens'] = sum(o[0] >= 0 for o in f['offset_mapping'])
        return feats

def test_hook_subclass(bert, tmp_path):
    cm = ChunkedCacheManager(tmp_path, chunk_size=50)
    p = WithLength(bert, 128, 32, progress=False, verbose=False, streaming_chunk_size=70)
    n = p.process_dataset_streaming(SQUAD, 'validation', cache_manager=cm)
    ds = cm.load(SQUAD, 'validation')
    ref,_ = P(bert, 128, 32).featurize(squad_rows())
    assert n == len(ref) and ds.column_names == ref.column_names + ['n_context_tokens']
    assert table(ds.remove_columns('n_context_tokens')).equals(table(ref))
    assert ds['n_context_tokens'] == [sum(o[0] >= 0 for o in r) for r in ref['offset_mapping']]
    assert cm.manifest(SQUAD, 'validation')['fingerprint'] != P(bert, 128, 32).cache_fingerprint(squad._Source(SQUAD, 'validation'))
    one = p._process_single_example(squad_rows()[0])  # callable on a raw row too
    assert 'n_context_tokens' in one[0] and one[0]['example_id'] == squad_rows()[0]['id']

class CustomProcessor(StreamingSquadProcessor):  # the guide's "Custom Processing Logic" example, as it is written there
    def _process_single_example(self, example, max_n_segs):
        """Override to add custom processing."""
        features = super()._process_single_example(example, max_n_segs)
        for feature in features:
            feature['custom_field'] = self._compute_custom_value(feature)
        return features

    def _compute_custom_value(self, feature):
        return len(feature['context'])

class CustomProcessor2(CustomProcessor):
    def _compute_custom_value(self, feature): return 2*len(feature['context'])

def test_guide_hook_example(bert, tmp_path):
    """The guide's subclass works as written (each feature dict carries its context for the hook, not stored per feature), and a
    change in a helper method the hook calls changes the cache fingerprint"""
    cm = ChunkedCacheManager(tmp_path)
    rows = squad_rows()[:40]
    p = CustomProcessor(bert, 128, 32, progress=False, verbose=False)
    n = p.process_dataset_streaming(rows, 'validation', cache_manager=cm, name='c')
    ds,exs = cm.load('c', 'validation'),cm.load_examples('c', 'validation')
    ctx = dict(zip(exs['example_id'], exs['context']))
    assert len(ds) == n and 'context' not in ds.column_names and ds['custom_field'] == [len(ctx[i]) for i in ds['example_id']]
    src = squad._Source(rows, 'validation')
    fps = {P(bert, 128, 32).cache_fingerprint(src), p.cache_fingerprint(src), CustomProcessor2(bert, 128, 32, progress=False, verbose=False).cache_fingerprint(src)}
    assert len(fps) == 3

def test_n_workers(bert, tmp_path):
    rows = copies(3)
    ref,_ = P(bert, 128, 32).featurize(rows)
    cm = ChunkedCacheManager(tmp_path, chunk_size=64)
    p = P(bert, 128, 32, streaming_chunk_size=100, n_workers=2)
    p.process_dataset_streaming(rows, 'train', cache_manager=cm, name='w')
    assert table(cm.load('w', 'train')).equals(table(ref)) and p.stats['features'] == len(ref)
    p2 = WithLength(bert, 128, 32, progress=False, verbose=False, streaming_chunk_size=100, n_workers=2)  # hook runs in the workers
    assert p2.process_dataset_streaming(rows, 'train') == len(ref)

# ---- processes: shards, resume, memory -----------------------------------------------------------------------------

SHARD = """
import os; os.environ['HF_HUB_OFFLINE'] = os.environ['HF_DATASETS_OFFLINE'] = '1'
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager
tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
p = StreamingSquadProcessor(tok, 128, 32, streaming_chunk_size=40, progress=False, verbose=False)
n = p.process_dataset_streaming({src!r}, 'validation', cache_manager=ChunkedCacheManager({cache!r}, chunk_size=25), name='sq',
                                rank={rank}, world_size=2)
print(n)
"""

def test_two_shards_in_two_processes(bert, tmp_path):
    procs = [run_py(SHARD.format(src=str(SQUAD), cache=str(tmp_path), rank=r)) for r in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    cm = ChunkedCacheManager(tmp_path)
    ds,m = cm.load('sq', 'validation'),cm.manifest('sq', 'validation')
    assert sum(int(o[0].split()[-1]) for o in outs) == len(ds) and len(m['shards']) == 2
    assert m['counts']['examples'] == 208 and cm.cache_exists('sq', 'validation')
    ref,_ = P(bert, 128, 32).featurize(squad_rows())
    key = lambda r: (r['example_id'], r['segment_index'])
    assert sorted(map(key, ds)) == sorted(map(key, ref))
    by = {key(r): r for r in ref}
    assert all(r == by[key(r)] for r in ds)
    ids0 = cm.load_examples('sq', 'validation')['example_id']
    rows = squad_rows()
    assert ids0 == [r['id'] for r in rows[0::2] + rows[1::2]]  # shard after shard; shard r holds records r, r+2... (split_dataset_by_node)
    eid,seg = ds['example_id'],ds['segment_index']
    assert [i for k,i in enumerate(eid) if k == 0 or eid[k-1] != i] == ids0  # features in the order of the examples, each example's together
    assert all(seg[k] == (seg[k-1] + 1 if k and eid[k-1] == eid[k] else 0) for k in range(len(ds)))  # and its windows in order
    shutil.rmtree(cm.shard_dir('sq', 'validation', 1, 2))
    assert not cm.cache_exists('sq', 'validation')
    with pytest.raises(CacheIncompleteError, match=r'shard\(s\) \[1\] of 2'): cm.load('sq', 'validation')

KILLED = """
import os, time; os.environ['HF_HUB_OFFLINE'] = os.environ['HF_DATASETS_OFFLINE'] = '1'
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager
class Slow(StreamingSquadProcessor):
    def _check_memory(self): time.sleep(0.5)  # slow down after each committed chunk, so the kill lands midway
tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
p = Slow(tok, 128, 32, streaming_chunk_size=100, progress=False, verbose=False)
p.process_dataset_streaming({src!r}, 'train', cache_manager=ChunkedCacheManager({cache!r}, chunk_size=50), name='k')
"""

def test_killed_run_resumes_to_the_same_cache(bert, tmp_path, caplog):
    src = write_jsonl(tmp_path/'in.jsonl', copies(6))  # 1,248 examples, 13 chunks of 100
    child = run_py(KILLED.format(src=str(src), cache=str(tmp_path/'a')))
    split = ChunkedCacheManager(tmp_path/'a').split_dir('k', 'train')
    t0,done = time.time(),0
    while time.time() - t0 < 240 and done < 3 and child.poll() is None:
        prog = list(split.parent.glob('.train.partial-*/progress.json'))
        if prog:
            try: done = len(json.loads(prog[0].read_text())['chunks'])
            except (ValueError, OSError): pass
        time.sleep(0.05)
    assert child.poll() is None, child.communicate()[1][-2000:]
    child.send_signal(signal.SIGKILL); child.wait()
    assert done >= 3 and not split.exists()
    cm = ChunkedCacheManager(tmp_path/'a', chunk_size=50)
    with caplog.at_level(logging.INFO, logger='fastai_memstream'):
        n = P(bert, 128, 32, streaming_chunk_size=100).process_dataset_streaming(src, 'train', cache_manager=cm, name='k')
    resumed = [r.getMessage() for r in caplog.records if 'Resuming' in r.getMessage()]
    assert resumed and 'records were already processed' in resumed[0]
    ref = ChunkedCacheManager(tmp_path/'b', chunk_size=50)
    assert P(bert, 128, 32, streaming_chunk_size=100).process_dataset_streaming(src, 'train', cache_manager=ref, name='k') == n
    assert table(cm.load('k', 'train')).equals(table(ref.load('k', 'train')))
    assert table(cm.load_examples('k', 'train')).equals(table(ref.load_examples('k', 'train')))
    assert cm.manifest('k', 'train')['counts'] == ref.manifest('k', 'train')['counts']
    assert not list(split.parent.glob('.train.partial-*'))

RSS = """
import os, json; os.environ['HF_HUB_OFFLINE'] = os.environ['HF_DATASETS_OFFLINE'] = '1'
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager
def hwm():
    for l in open('/proc/self/status'):
        if l.startswith('VmHWM:'): return int(l.split()[1])/1024
tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
p = StreamingSquadProcessor(tok, 384, 128, streaming_chunk_size=200, progress=False, verbose=False)
b = hwm()
n = p.process_dataset_streaming({src!r}, 'train', cache_manager=ChunkedCacheManager({cache!r}), name='r')
print(json.dumps(dict(before=b, peak=hwm(), features=n)))
"""

@pytest.mark.skipif(not Path('/proc/self/status').exists(), reason='reads VmHWM from /proc')
def test_peak_rss_flat_when_input_grows_8x(tmp_path):
    res = {}
    for k in (3, 24):
        src = write_jsonl(tmp_path/f'in{k}.jsonl', copies(k))
        p = run_py(RSS.format(src=str(src), cache=str(tmp_path/f'c{k}')))
        out,err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        res[k] = json.loads(out.strip().splitlines()[-1])
    g1,g8 = (res[k]['peak'] - res[k]['before'] for k in (3, 24))
    print(f"peak RSS 1x {res[3]['peak']:.0f} MB (+{g1:.0f}), 8x {res[24]['peak']:.0f} MB (+{g8:.0f}); features {res[3]['features']} -> {res[24]['features']}")
    assert res[24]['features'] == 8*res[3]['features']
    assert g8 < g1 + 40 and res[24]['peak'] < 1.05*res[3]['peak']

def test_memory_limit_logs_and_collects(bert, caplog):
    p = P(bert, 128, 32, max_memory_gb=0.001, streaming_chunk_size=50)
    with caplog.at_level(logging.INFO, logger='fastai_memstream'):
        n = p.process_dataset_streaming(squad_rows(), 'validation')
    msgs = [r.getMessage() for r in caplog.records]
    chunks = [m for m in msgs if 'Processed' in m and 'generated' in m]
    assert len(chunks) == 5 and chunks[-1].startswith('🔄 Processed 208 examples') and f'(total: {n:,} features)' in chunks[-1]
    assert sum('exceeds limit (0.001 GB)' in m for m in msgs) == 5 and sum('after cleanup' in m for m in msgs) == 5
    assert len(p.memory_events) == 5 and all(b > 0 and a > 0 for b,a in p.memory_events)

def test_construction_report(bert, capsys):
    tok = copy.deepcopy(bert); configure_memory_tokens(tok, 16)
    StreamingSquadProcessor(tok, progress=False)
    out = capsys.readouterr().out
    for s in ('Initialized StreamingSquadProcessor', 'Max sequence length: 384', 'Doc stride: 128', 'Streaming chunk size: 1000',
              'Max memory limit: 8.0 GB', 'Memory monitoring: enabled', 'Memory tokens detected: 16 memory token pairs (32 tokens)'):
        assert s in out, s
    StreamingSquadProcessor(bert, progress=False, verbose=False)
    assert capsys.readouterr().out == ''

# ---- Hub workflow on local folders ---------------------------------------------------------------------------------

class FakeApi:
    "Stands in for huggingface_hub.HfApi: 'uploads' into a local folder per repo"
    root,calls = None,[]
    def __init__(self, token=None): pass
    def whoami(self): return {'name': 'me'}
    def create_repo(self, repo_id, repo_type=None, private=None, exist_ok=False):
        FakeApi.calls.append(('create_repo', repo_id, repo_type, private)); (FakeApi.root/repo_id).mkdir(parents=True, exist_ok=True)
    def upload_folder(self, repo_id, folder_path, repo_type=None, commit_message=None, **kw):
        FakeApi.calls.append(('upload_folder', repo_id, repo_type)); shutil.copytree(folder_path, FakeApi.root/repo_id, dirs_exist_ok=True)

def test_hub_roundtrip_on_local_folders(bert, tmp_path, monkeypatch):
    import huggingface_hub
    FakeApi.root,FakeApi.calls = tmp_path/'hub',[]
    monkeypatch.setattr(huggingface_hub, 'HfApi', FakeApi)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False); monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(huggingface_hub, 'get_token', lambda: 'hf_fake')
    tok = copy.deepcopy(bert); configure_memory_tokens(tok, 2)
    src = write_jsonl(tmp_path/'in.jsonl', squad_rows())
    rid = upload_processed_dataset_to_hub(src, ['train', 'validation'], tok, 128, 32, None, 'me/squad-mem2', True, tmp_path/'cache',
                                          max_train_samples=50, max_eval_samples=None, progress=False, verbose=False)
    assert rid == 'me/squad-mem2'
    assert FakeApi.calls == [('create_repo', 'me/squad-mem2', 'dataset', True), ('upload_folder', 'me/squad-mem2', 'dataset')]
    repo = FakeApi.root/'me/squad-mem2'
    card = (repo/'README.md').read_text()
    cm = ChunkedCacheManager(tmp_path/'cache')
    for s,n in (('train', 50), ('validation', 208)):
        m = cm.manifest(src, s)
        assert m['fingerprint'] in card and f"path: {s}/features-*.arrow" in card and m['counts']['examples'] == n
        assert table(load_dataset_from_hub(repo, s)).equals(table(cm.load(src, s)))
        assert table(load_dataset_from_hub(repo, s, part='examples')).equals(table(cm.load_examples(src, s)))
        assert load_dataset_from_hub(repo, s, part='manifest')['fingerprint'] == m['fingerprint']
    assert card.startswith('---\nconfigs:') and '| `max_seq_length` | `128` |' in card and '| memory token pairs | 2 |' in card
    assert load_dataset_from_hub(repo, 'train', part='tokenizer').convert_tokens_to_ids('[MEM_READ_1]') == tok.convert_tokens_to_ids('[MEM_READ_1]')
    hf = datasets.load_dataset(str(repo), split='validation')  # the card's YAML points datasets at the feature chunks
    assert len(hf) == len(cm.load(src, 'validation'))
    assert not (tmp_path/'cache'/'.hub-upload'/'me--squad-mem2').exists()
    with pytest.raises(ValueError, match="no split 'test'"): load_dataset_from_hub(repo, 'test')
    with pytest.raises(ValueError, match="'user/name'"): upload_processed_dataset_to_hub(src, ['train'], tok, hub_dataset_id='nope')
    # a Hub id is fetched with snapshot_download (only the split's folder and the card), then read like a local folder
    got = []
    def fake_snapshot(repo_id, repo_type=None, revision=None, cache_dir=None, token=None, allow_patterns=None, **kw):
        got.append((repo_id, repo_type, revision, allow_patterns)); return str(FakeApi.root/repo_id)
    monkeypatch.setattr(huggingface_hub, 'snapshot_download', fake_snapshot)
    assert table(load_dataset_from_hub('me/squad-mem2', 'validation', revision='v1')).equals(table(cm.load(src, 'validation')))
    assert got == [('me/squad-mem2', 'dataset', 'v1', ['validation/**', 'README.md'])]
    # large_folder=True needs HfApi.upload_large_folder (gone from recent huggingface_hub): refused before any processing
    FakeApi.calls = []
    if not hasattr(FakeApi, 'upload_large_folder'):
        with pytest.raises(ValueError, match='large_folder=False'):
            upload_processed_dataset_to_hub(src, ['train'], tok, hub_dataset_id='me/x', cache_dir=tmp_path/'c2', large_folder=True)
        assert FakeApi.calls == [] and not (tmp_path/'c2').exists()

# ---- benchmark smoke -----------------------------------------------------------------------------------------------

def test_bench_quick():
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_squad.py'), '--quick'], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'speed ratio (processor 1 process / run_qa)' in r.stdout and 'peak RSS ratio (8x / 1x input)' in r.stdout
    assert '| run_qa recipe, datasets.map(batched=True)' in r.stdout
