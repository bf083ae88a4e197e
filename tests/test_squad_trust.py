"""Trusting the SQuAD feature cache and its input (issue 10): damaged, edited or swapped cache files give a named error (or the
same data), never a crash, a bare decoding error or different rows; resumed builds check partial chunks by checksum; a full
disk is a `CacheWriteError`; the worker pool dies with its parent; bad bytes are bad records; labels cover the answer and
nothing more; the Hub upload checks the Hub before processing anything."""
import os, sys, json, time, errno, random, shutil, codecs, copy, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
from pathlib import Path
import pytest, datasets
import pyarrow as pa
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data, MemstreamError, CacheCorruptError, CacheFormatError, CacheWriteError, MANIFEST
import fastai_memstream.squad as squad, fastai_memstream.squad_cache as squad_cache
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager, BadRecordError, upload_processed_dataset_to_hub
from test_squad_oracle import squad_rows

SQUAD = sample_data('squad-v2/dev-v2.0-subset.json')

@pytest.fixture(scope='module')
def bert(): return AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))

def P(tok, *a, **kw): return StreamingSquadProcessor(tok, *a, progress=False, verbose=False, **kw)
def table(ds): return ds.with_format('arrow')[:]
def snapshot(ds):
    "A copy in memory of a (memory-mapped) dataset's table: later writes to its files must not change the reference"
    t,sink = table(ds),pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w: w.write_table(t)
    return pa.ipc.open_stream(sink.getvalue()).read_all()

def build(tok, root, rows=None, name='t', **kw):
    cm = ChunkedCacheManager(root, chunk_size=20)
    P(tok, 128, 32, streaming_chunk_size=30).process_dataset_streaming(rows if rows is not None else squad_rows()[:60], 'validation',
                                                                        cache_manager=cm, name=name, **kw)
    return cm

# ---- fault injection: the committed cache ---------------------------------------------------------------------------

def outcome(cm, ref_f, ref_e, name='t'):
    "'named' (a MemstreamError and cache_exists says False) or 'identical' (every row as before); anything else fails the test"
    try: f,e = cm.load(name, 'validation'),cm.load_examples(name, 'validation')
    except MemstreamError as err:
        assert not cm.cache_exists(name, 'validation'), err
        return 'named'
    assert table(f).equals(ref_f) and table(e).equals(ref_e), 'a damaged cache served different rows'
    assert cm.cache_exists(name, 'validation')
    return 'identical'

def test_fault_injection_committed_cache(bert, tmp_path):
    cm = build(bert, tmp_path/'c')
    folder = cm.split_dir('t', 'validation')
    ref_f,ref_e = snapshot(cm.load('t', 'validation')),snapshot(cm.load_examples('t', 'validation'))
    m0 = json.loads((folder/MANIFEST).read_text())
    assert len(m0['chunks']) == 4
    kinds = {'features chunk': folder/'features-00001.arrow', 'examples chunk': folder/'examples-00001.arrow',
             'tokenizer file': folder/'tokenizer'/'tokenizer.json', 'manifest': folder/MANIFEST}
    rng = random.Random(0)
    counts = {'attempts': 0, 'named': 0, 'identical': 0}
    def check(what):
        r = outcome(cm, ref_f, ref_e)
        counts['attempts'] += 1; counts[r] += 1
        return r
    for kind,fn in kinds.items():
        ok = fn.read_bytes()
        # truncated
        fn.write_bytes(ok[:len(ok)//2])
        assert check(f'{kind} truncated') == 'named', kind
        # a byte flipped at seeded positions (same size)
        for pos in sorted(rng.sample(range(len(ok)), 6)):
            b = bytearray(ok); b[pos] ^= 1 << rng.randrange(8)
            fn.write_bytes(bytes(b))
            r = check(f'{kind} byte {pos}')
            if kind != 'manifest': assert r == 'named', (kind, pos)  # every byte of a data file is covered by its checksum
        # deleted
        fn.unlink()
        assert check(f'{kind} deleted') == 'named', kind
        # replaced by a symlink: to an identical copy (identical data or refused), to another file (refused)
        copy_ = tmp_path/'elsewhere'/fn.name; copy_.parent.mkdir(exist_ok=True); copy_.write_bytes(ok)
        fn.symlink_to(copy_)
        check(f'{kind} symlink to a copy')
        fn.unlink(); fn.symlink_to(folder/'examples-00000.arrow' if kind != 'examples chunk' else folder/'features-00000.arrow')
        assert check(f'{kind} symlink to another file') == 'named', kind
        fn.unlink(); fn.write_bytes(ok)
        assert check(f'{kind} restored') == 'identical', kind
    print(f"\nSQuAD cache fault injection: {counts['attempts']} attempts, {counts['named']} named errors, {counts['identical']} identical data")
    assert counts['named'] >= 4*(2+6+1) - 6  # (manifest byte flips may land in a field that changes nothing)

EDITS = {
    'chunk entry dropped': lambda m: m['chunks'].pop(1),
    'last chunk entry dropped': lambda m: m['chunks'].pop(),
    'chunk entry and its files dropped': lambda m: [m['files'].pop(m['chunks'][2][k]) for k in ('features', 'examples')] and m['chunks'].pop(),
    'count mismatch': lambda m: m['counts'].update(features=m['counts']['features'] + 1),
    'n_features edited with its count': lambda m: (m['chunks'][0].update(n_features=m['chunks'][0]['n_features'] - 1),
                                                   m['counts'].update(features=m['counts']['features'] - 1)),
    'file outside the folder': lambda m: m['chunks'][0].update(features='/etc/hostname'),
    'files entry pointing outside': lambda m: m['files']['features-00000.arrow'].update(file='../../../etc/hostname'),
    'parent path in a chunk': lambda m: m['chunks'][0].update(examples='../examples-00000.arrow'),
    'chunk listed twice': lambda m: m['chunks'][1].update(features=m['chunks'][0]['features']),
    'chunks not a list': lambda m: m.update(chunks={'a': 1}),
    'files removed': lambda m: m.pop('files'),
    'nbytes not a number': lambda m: m['files']['examples-00000.arrow'].update(nbytes='12'),
    'checksum edited': lambda m: [e.update({k: '0'*len(v)}) for e in m['files'].values() for k,v in list(e.items()) if k in ('xxh3', 'sha256')],
    'n_examples negative': lambda m: m['chunks'][0].update(n_examples=-1),
    'truncated manifest': None,
}

def test_edited_manifests_are_named_errors(bert, tmp_path):
    cm = build(bert, tmp_path/'c')
    folder = cm.split_dir('t', 'validation')
    ref_f,ref_e = snapshot(cm.load('t', 'validation')),snapshot(cm.load_examples('t', 'validation'))
    ok = (folder/MANIFEST).read_text()
    named = 0
    for what,edit in EDITS.items():
        if edit is None: (folder/MANIFEST).write_text(ok[:len(ok)//2])
        else:
            m = json.loads(ok); edit(m); (folder/MANIFEST).write_text(json.dumps(m))
        with pytest.raises((CacheCorruptError, CacheFormatError)) as e: cm.load('t', 'validation')
        assert 'manifest.json' in str(e.value) or folder.name in str(e.value), (what, str(e.value))
        with pytest.raises((CacheCorruptError, CacheFormatError)): cm.load_examples('t', 'validation')
        assert not cm.cache_exists('t', 'validation'), what
        named += 1
    (folder/MANIFEST).write_text(ok)
    assert table(cm.load('t', 'validation')).equals(ref_f)
    print(f"\nSQuAD manifest edits: {len(EDITS)} attempts, {named} named errors")

def test_field_named_in_the_error(bert, tmp_path):
    cm = build(bert, tmp_path/'c')
    folder = cm.split_dir('t', 'validation')
    m = json.loads((folder/MANIFEST).read_text())
    for edit,field in ((lambda m: m['chunks'].pop(1), "'chunks'"), (lambda m: m['counts'].update(features=1), "'counts.features'"),
                       (lambda m: m['chunks'][0].update(features='/etc/hostname'), "'chunks[0].features'")):
        mm = copy.deepcopy(m); edit(mm); (folder/MANIFEST).write_text(json.dumps(mm))
        with pytest.raises(MemstreamError, match=field.replace('[', r'\[').replace(']', r'\]')): cm.load('t', 'validation')

def test_damaged_cache_is_rebuilt_with_a_warning(bert, tmp_path):
    cm = build(bert, tmp_path/'c')
    folder = cm.split_dir('t', 'validation')
    ref = snapshot(cm.load('t', 'validation'))
    fn = folder/'features-00002.arrow'
    b = bytearray(fn.read_bytes()); b[len(b)//3] ^= 0x40; fn.write_bytes(bytes(b))
    with pytest.warns(UserWarning, match='damaged'): cm2 = build(bert, tmp_path/'c')
    assert table(cm2.load('t', 'validation')).equals(ref)

def test_load_dataset_from_hub_verifies(bert, tmp_path):
    cm = build(bert, tmp_path/'c')
    repo = tmp_path/'repo'
    shutil.copytree(cm.split_dir('t', 'validation'), repo/'validation')
    assert len(squad.load_dataset_from_hub(repo, 'validation')) == len(cm.load('t', 'validation'))
    fn = repo/'validation'/'examples-00000.arrow'
    b = bytearray(fn.read_bytes()); b[-200] ^= 0x20; fn.write_bytes(bytes(b))
    for part in ('features', 'examples', 'manifest', 'tokenizer'):
        with pytest.raises(CacheCorruptError, match='examples-00000.arrow'): squad.load_dataset_from_hub(repo, 'validation', part=part)

# ---- resumed builds check partial chunks by checksum ----------------------------------------------------------------

class Dies(StreamingSquadProcessor):
    "Stops (as a kill would) after `n` committed chunks"
    n = 2
    def _check_memory(self):
        self.done = getattr(self, 'done', 0) + 1
        if self.done >= self.n: raise KeyboardInterrupt('killed')

def test_resume_checks_partial_chunks_by_checksum(bert, tmp_path):
    rows = squad_rows()[:90]
    ref = build(bert, tmp_path/'ref', rows)
    cm = ChunkedCacheManager(tmp_path/'c', chunk_size=20)
    with pytest.raises(KeyboardInterrupt):
        Dies(bert, 128, 32, streaming_chunk_size=30, progress=False, verbose=False).process_dataset_streaming(rows, 'validation', cache_manager=cm, name='t')
    part = next(cm.split_dir('t', 'validation').parent.glob('.validation.partial-*'))
    chunks = sorted(part.glob('features-*.arrow'))
    assert len(chunks) >= 2
    b = bytearray(chunks[0].read_bytes()); b[len(b)//2] ^= 0x10; chunks[0].write_bytes(bytes(b))  # same size, other bytes
    build(bert, tmp_path/'c', rows)
    assert table(cm.load('t', 'validation')).equals(table(ref.load('t', 'validation')))
    assert table(cm.load_examples('t', 'validation')).equals(table(ref.load_examples('t', 'validation')))

# ---- full disk ------------------------------------------------------------------------------------------------------

def test_full_disk_is_a_named_error(bert, tmp_path, monkeypatch):
    real = pa.ipc.new_stream
    calls = {'n': 0}
    def full(*a, **kw):
        calls['n'] += 1
        if calls['n'] > 2: raise OSError(errno.ENOSPC, 'No space left on device')
        return real(*a, **kw)
    monkeypatch.setattr(squad_cache.pa.ipc, 'new_stream', full)
    cm = ChunkedCacheManager(tmp_path/'c', chunk_size=20)
    with pytest.raises(MemstreamError) as e:
        P(bert, 128, 32, streaming_chunk_size=30).process_dataset_streaming(squad_rows()[:60], 'validation', cache_manager=cm, name='t')
    assert isinstance(e.value, CacheWriteError) and isinstance(e.value, OSError)
    msg = str(e.value)
    assert 'No space left on device' in msg and str(tmp_path/'c') in msg and 'Free space' in msg and 'resumes' in msg, msg
    monkeypatch.setattr(squad_cache.pa.ipc, 'new_stream', real)  # space freed: the same call resumes and finishes
    build(bert, tmp_path/'c')
    assert len(cm.load('t', 'validation')) > 0

# ---- worker processes die with their parent -------------------------------------------------------------------------

def test_pool_initializer_calls_die_with_parent(bert, tmp_path, monkeypatch):
    log = tmp_path/'calls'
    def record(parent_pid=None):
        with open(log, 'a') as f: f.write(f"{os.getpid()} {parent_pid}\n")
    monkeypatch.setattr(squad, 'die_with_parent', record)  # forked workers inherit the patch
    P(bert, 128, 32, streaming_chunk_size=40, n_workers=2).process_dataset_streaming(squad_rows()[:120], 'validation')
    calls = [l.split() for l in log.read_text().splitlines()]
    assert len(calls) == 2 and all(int(ppid) == os.getpid() and int(pid) != os.getpid() for pid,ppid in calls), calls

# ---- bad bytes are bad records --------------------------------------------------------------------------------------

def jl_rows(n=4): return [dict(r, id=f'b{i}') for i,r in enumerate(squad_rows()[:n])]

def test_invalid_utf8_line(bert, tmp_path):
    fn = tmp_path/'bad.jsonl'
    lines = [json.dumps(r).encode() for r in jl_rows()]
    lines[2] = lines[2].replace(b'"question": "', b'"question": "\xff\xfe ')
    fn.write_bytes(b'\n'.join(lines) + b'\n')
    p = P(bert, 128, 32)
    with pytest.raises(BadRecordError, match=f"{fn}: line 3: not valid UTF-8"): p.process_dataset_streaming(fn)
    p = P(bert, 128, 32, on_bad_record='skip')
    p.process_dataset_streaming(fn)
    assert p.stats['records_rejected'] == 1 and p.stats['examples'] == 3 and 'line 3' in p.rejected[0]

def test_utf16_file_is_one_rejected_record(bert, tmp_path):
    (tmp_path/'d').mkdir()
    (tmp_path/'d'/'a.jsonl').write_text('\n'.join(json.dumps(r) for r in jl_rows()), encoding='utf-16')
    (tmp_path/'d'/'b.jsonl').write_text('\n'.join(json.dumps(dict(r, id=r['id'] + 'x')) for r in jl_rows()), encoding='utf-8')
    (tmp_path/'d'/'c.json').write_text(json.dumps(jl_rows()), encoding='utf-16')
    with pytest.raises(BadRecordError, match='UTF-16'): P(bert, 128, 32).process_dataset_streaming(tmp_path/'d')
    p = P(bert, 128, 32, on_bad_record='skip')
    p.process_dataset_streaming(tmp_path/'d')
    assert p.stats['records_rejected'] == 2 and p.stats['examples'] == 4, p.stats
    assert all('UTF-16' in r for r in p.rejected)

def test_bom_keeps_the_first_record(bert, tmp_path):
    rows = jl_rows()
    jl = tmp_path/'bom.jsonl'; jl.write_bytes(codecs.BOM_UTF8 + '\n'.join(json.dumps(r) for r in rows).encode())
    js = tmp_path/'bom.json'; js.write_bytes(codecs.BOM_UTF8 + json.dumps({'data': rows}).encode())
    nested = tmp_path/'nested.json'; nested.write_bytes(codecs.BOM_UTF8 + SQUAD.read_bytes())
    for fn,n in ((jl, 4), (js, 4), (nested, 208)):
        p = P(bert, 128, 32)
        p.process_dataset_streaming(fn)
        assert p.stats['examples'] == n and p.stats['records_rejected'] == 0, fn

def test_invalid_utf8_in_nested_json(bert, tmp_path):
    fn = tmp_path/'nested.json'
    txt = SQUAD.read_bytes()
    i = txt.index(b'"question"', 20000)
    fn.write_bytes(txt[:i+13] + b'\xc3\x28' + txt[i+13:])
    line = txt[:i].count(b'\n') + 1
    with pytest.raises(BadRecordError, match=f"line {line}: not valid UTF-8"): P(bert, 128, 32).process_dataset_streaming(fn)
    p = P(bert, 128, 32, on_bad_record='skip')
    p.process_dataset_streaming(fn)
    assert p.stats['records_rejected'] == 1 and 0 < p.stats['examples'] < 208 and 'the rest of this JSON document' in p.rejected[0]

# ---- labels ---------------------------------------------------------------------------------------------------------

CTX = "In 1001 the abbey of Fecamp was rebuilt by William de Volpiano, who came from Italy, and the abbey was reformed."

def spans(feats, exs):
    ctx = {e['example_id']: e['context'] for e in exs}
    return [ctx[f['example_id']][f['offset_mapping'][f['start_positions']][0]:f['offset_mapping'][f['end_positions']][1]]
            for f in feats if f['start_positions'] != f['cls_index']]

@pytest.mark.parametrize('text,shift', [(' William de Volpiano', -1), ('William de Volpiano ', 0), ('  William de Volpiano\n', -2),
                                        (' William de Volpiano', 0)])
def test_answer_with_spaces_labels_only_the_answer(bert, text, shift):
    s = CTX.index('William') + shift
    p = P(bert, 64, 16, max_query_length=16)
    feats,exs = p.featurize([dict(id='w', context=CTX, question='Who rebuilt the abbey?', answers={'text': [text], 'answer_start': [s]})])
    assert set(spans(feats, exs)) == {'William de Volpiano'}
    assert p.stats['answers_trimmed'] == 1 and exs[0]['answers']['text'] == ['William de Volpiano']
    assert exs[0]['answers']['answer_start'] == [CTX.index('William')]

def test_recipe_labels_one_token_too_wide(bert):
    "The run_qa recipe labels 'by William de Volpiano' for the same row: our label is the smallest span covering the answer"
    from run_qa_recipe import run_qa_features
    row = dict(id='w', title='', context=CTX, question='Who rebuilt the abbey?', answers={'text': [' William de Volpiano'], 'answer_start': [CTX.index('William') - 1]})
    ref = run_qa_features(bert, datasets.Dataset.from_list([row]), 64, 16)
    f = ref[0]
    o = f['offset_mapping']
    assert CTX[o[f['start_positions']][0]:o[f['end_positions']][1]] == 'by William de Volpiano'

@pytest.mark.parametrize('value', ['false', 'False', 0, 1, 'true', [False]])
def test_is_impossible_must_be_a_boolean(bert, value):
    r = dict(id='x', context=CTX, question='Who?', answers={'text': ['William'], 'answer_start': [CTX.index('William')]}, is_impossible=value)
    with pytest.raises(BadRecordError, match="'is_impossible' must be true or false"): P(bert, 64, 16, max_query_length=16).featurize([r])
    p = P(bert, 64, 16, max_query_length=16, on_bad_record='skip')
    feats,exs = p.featurize([r, dict(r, id='y', is_impossible=False), dict(r, id='z', is_impossible=True)])
    assert p.stats['records_rejected'] == 1 and exs['example_id'] == ['y', 'z'] and exs['is_impossible'] == [False, True]

def test_repaired_nfd_answer_stores_the_context_text(bert):
    from fastai_memstream.qa_eval import compute_exact
    ctx = "The Caf\u00e9 de Flore is in Paris."
    p = P(bert, 64, 16, max_query_length=16)
    feats,exs = p.featurize([dict(id='c', context=ctx, question='Which cafe?', answers={'text': ['Cafe\u0301 de Flore'], 'answer_start': [4]})])
    gold = exs[0]['answers']['text'][0]
    pred = spans(feats, exs)[0]  # a perfect prediction: the labelled span
    assert gold == 'Caf\u00e9 de Flore' and p.stats['answers_repaired'] == 1
    assert compute_exact(gold, pred) == 1

# ---- the Hub is checked before anything is processed ----------------------------------------------------------------

def test_upload_offline_fails_at_once(bert, tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    t0 = time.perf_counter()
    with pytest.raises(squad.HubUnavailableError) as e:
        upload_processed_dataset_to_hub(SQUAD, ['validation'], bert, hub_dataset_id='me/x', cache_dir=tmp_path/'c')
    assert time.perf_counter() - t0 < 1
    msg = str(e.value)
    assert 'HF_HUB_OFFLINE' in msg and 'login' in msg and 'kept' in msg and not (tmp_path/'c').exists()

def test_upload_unreachable_fails_before_processing(bert, tmp_path, monkeypatch):
    import huggingface_hub
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False); monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(huggingface_hub, 'get_token', lambda: None)
    processed = []
    monkeypatch.setattr(StreamingSquadProcessor, 'process_dataset_streaming', lambda *a, **k: processed.append(1))
    with pytest.raises(squad.HubUnavailableError, match='login'):
        upload_processed_dataset_to_hub(SQUAD, ['validation'], bert, hub_dataset_id='me/x', cache_dir=tmp_path/'c')
    class NoNet:
        def __init__(self, token=None): pass
        def whoami(self): raise ConnectionError('Failed to resolve huggingface.co')
    monkeypatch.setattr(huggingface_hub, 'HfApi', NoNet)
    t0 = time.perf_counter()
    with pytest.raises(squad.HubUnavailableError, match="can't be reached") as e:
        upload_processed_dataset_to_hub(SQUAD, ['validation'], bert, hub_dataset_id='me/x', cache_dir=tmp_path/'c', token='hf_x')
    assert time.perf_counter() - t0 < 1 and 'HF_HUB_OFFLINE' in str(e.value) and processed == []

ORPHAN = """
import os, time; os.environ['HF_HUB_OFFLINE'] = os.environ['HF_DATASETS_OFFLINE'] = '1'
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor
from test_squad_oracle import squad_rows
class Slow(StreamingSquadProcessor):
    def _process_single_example(self, example, max_n_segs=None):
        time.sleep(0.05); return super()._process_single_example(example, max_n_segs)
tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
Slow(tok, 128, 32, streaming_chunk_size=20, n_workers=2, progress=False, verbose=False).process_dataset_streaming(squad_rows()*5, 'train')
"""

def test_workers_die_with_a_killed_parent(tmp_path):
    "kill -9 of a processor with n_workers=2: its worker processes exit too (no orphan keeps its memory)"
    psutil = pytest.importorskip('psutil')
    import subprocess, signal
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, 'PYTHONPATH': f"{root/'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen([sys.executable, '-c', ORPHAN], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0,kids = time.time(),[]
    while time.time() - t0 < 120 and child.poll() is None:
        kids = [k for k in psutil.Process(child.pid).children() if k.status() != psutil.STATUS_ZOMBIE]
        if len(kids) >= 2: break
        time.sleep(0.1)
    assert child.poll() is None and len(kids) >= 2, child.stderr.read().decode()[-2000:] if child.poll() is not None else kids
    time.sleep(1)  # the workers are busy with chunks
    child.send_signal(signal.SIGKILL); child.wait()
    def alive(p):
        try: return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess: return False
    t0 = time.time()
    while time.time() - t0 < 10 and any(alive(k) for k in kids): time.sleep(0.1)
    left = [k.pid for k in kids if alive(k)]
    for pid in left: os.kill(pid, signal.SIGKILL)  # don't leave them behind if the test fails
    assert not left, f"orphaned workers {left}"

# ---- the CLI's `verify` on a SQuAD cache -------------------------------------------------------------------------------

def test_cli_verify_squad_cache(bert, tmp_path):
    "`fastai_memstream verify` checks a SQuAD cache's chunk list and counts too: a dropped chunk entry exits 1 with the field named"
    import subprocess
    cm = build(bert, tmp_path/'c')
    folder = cm.split_dir('t', 'validation')
    run = lambda: subprocess.run([sys.executable, '-m', 'fastai_memstream', 'verify', str(folder)], capture_output=True, text=True)
    r = run()
    assert r.returncode == 0, r.stderr
    mf = folder/MANIFEST
    m = json.loads(mf.read_text()); m['chunks'] = m['chunks'][1:]   # an entry removed: its files are still listed in `files`
    mf.write_text(json.dumps(m))
    r = run()
    assert r.returncode == 1 and 'chunks' in r.stderr and 'Traceback' not in r.stderr, r.stderr
