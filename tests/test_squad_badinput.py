"""Bad input for the SQuAD processor (issue 5, "Bad input"): each case is handled (repaired and counted, labelled
unanswerable and counted, skipped and counted, or a clear error) and never gives a crash or a label on a span that is not
the answer."""
import os, json, random, threading, time, unicodedata, re
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import numpy as np, pytest
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.memory import MemorySampler
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager, BadRecordError, place_answer
from test_squad_oracle import squad_rows

CTX = "The Normans were in Normandy, a region in France. In 911 the Normans gave their name to Normandy. Normandy is green."

@pytest.fixture(scope='module')
def tok(): return AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))

@pytest.fixture(scope='module')
def xlnet(tmp_path_factory):
    from fastai_memstream.squad import make_test_xlnet_tokenizer
    return make_test_xlnet_tokenizer(tmp_path_factory.mktemp('xlnet'))

@pytest.fixture(scope='module')
def proc(tok): return StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)

def row(**kw):
    r = dict(id='q1', title='Normans', context=CTX, question='Where were the Normans?', answers={'text': ['Normandy'], 'answer_start': [20]})
    return {**r, **kw}

def norm(s): return re.sub(r'\s+', ' ', unicodedata.normalize('NFKD', s)).strip().lower()

def labelled_spans(feats, exs):
    "Context text under each answer label (None for a CLS label)"
    ctx = {e['example_id']: e['context'] for e in exs}
    out = []
    for f in feats:
        if f['start_positions'] == f['cls_index']: out.append(None); continue
        o = f['offset_mapping']
        assert o[f['start_positions']][0] >= 0 and o[f['end_positions']][1] >= 0, 'label on a token outside the context'
        out.append(ctx[f['example_id']][o[f['start_positions']][0]:o[f['end_positions']][1]])
    return out

def one(proc, r, **kw):
    feats,exs = proc.featurize([r], **kw)
    return feats,exs,labelled_spans(feats, exs),proc.stats

def test_clean_answer_is_exact(proc):
    _,exs,spans,st = one(proc, row())
    assert st['answers_repaired'] == 0 and st['answerable'] == 1
    assert [s for s in spans if s] == ['Normandy'] and exs[0]['answers'] == {'text': ['Normandy'], 'answer_start': [20]}

def test_missing_answers(proc):
    r = row(); del r['answers']
    _,exs,spans,st = one(proc, r)
    assert all(s is None for s in spans)
    assert st['answers_missing'] == 1 and st['unanswerable'] == 1 and st['answerable'] == 0
    assert exs[0]['is_impossible'] and exs[0]['answers'] == {'text': [], 'answer_start': []}

@pytest.mark.parametrize('start', [-5, 10_000, 200, 75, 90, 3, 21])
def test_wrong_start_repaired_to_nearest(proc, start):
    occ = [m.start() for m in re.finditer('Normandy', CTX)]
    assert len(occ) == 3
    where = min(occ, key=lambda o: abs(o - start))
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': [start]}))
    assert st['answers_repaired'] == 1 and st['answerable'] == 1
    assert exs[0]['answers']['answer_start'] == [where] and CTX[where:where+8] == 'Normandy'
    assert [s for s in spans if s] == ['Normandy']

def test_float_start(proc):
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': [20.0]}))
    assert st['answer_starts_coerced'] == 1 and st['answers_repaired'] == 0 and [s for s in spans if s] == ['Normandy']
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': [20.5]}))  # not integral: found by its text
    assert st['answer_starts_coerced'] == 0 and st['answers_repaired'] == 1 and [s for s in spans if s] == ['Normandy']

def test_string_start(proc):
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': ['20']}))
    assert st['answer_starts_coerced'] == 1 and st['answers_repaired'] == 0 and exs[0]['answers']['answer_start'] == [20]
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': ['twenty']}))
    assert st['answers_repaired'] == 1 and [s for s in spans if s] == ['Normandy']
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': [True]}))  # a bool is not a position
    assert st['answers_repaired'] == 1 and st['answer_starts_coerced'] == 0

@pytest.mark.parametrize('text', ['', '   ', 'Vikings of Iceland', None, 155])
def test_unplaceable_answer_is_unanswerable(proc, text):
    _,exs,spans,st = one(proc, row(answers={'text': [text], 'answer_start': [20]}))
    assert all(s is None for s in spans)
    assert st['answers_unplaced'] == 1 and st['unanswerable'] == 1 and exs[0]['answers']['answer_start'] == [-1]

def test_second_answer_used_when_first_unplaceable(proc):
    _,exs,spans,st = one(proc, row(answers={'text': ['Vikings', 'France'], 'answer_start': [0, 42]}))
    assert [s for s in spans if s] == ['France'] and st['answers_unplaced'] == 0 and exs[0]['answers']['answer_start'] == [-1, 42]

def test_unicode_and_whitespace_repair(proc):
    ctx = "Caf\u00e9 culture   spread\u00a0quickly in Paris, the \ufb01nal word."
    for text in ('Cafe\u0301 culture', 'culture spread quickly', 'final word', 'spread\tquickly'):
        p = place_answer(ctx, text, 0)
        assert p is not None and p[2] == 'repaired', text
        assert norm(ctx[p[0]:p[1]]) == norm(text)
    _,exs,spans,st = one(proc, dict(id='u', context=ctx, question='What spread?', answers={'text': ['culture spread quickly'], 'answer_start': [0]}))
    assert st['answers_repaired'] == 1 and norm(next(s for s in spans if s)) == 'culture spread quickly'

@pytest.mark.parametrize('field,value,msg', [('context', '', 'empty context'), ('context', '   \n', 'empty context'),
                                             ('question', '', 'empty question'), ('question', '  ', 'empty question'),
                                             ('context', 123, "'context' must be a string"), ('question', None, "'question' must be a string"),
                                             ('context', ['a'], "'context' must be a string"), ('id', None, "'id' must be"),
                                             ('answers', 'Normandy', "'answers' must be")])
def test_bad_records(tok, field, value, msg):
    bad = row(**{'id': 'bad', field: value})
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)
    with pytest.raises(BadRecordError) as e: p.featurize([row(), bad])
    assert msg in str(e.value) and "on_bad_record='skip'" in str(e.value) and 'record 1' in str(e.value)
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False, on_bad_record='skip')
    feats,exs = p.featurize([row(), bad, row(id='q3')])
    assert p.stats['records_rejected'] == 1 and p.stats['examples'] == 2 and exs['example_id'] == ['q1', 'q3']
    assert msg in p.rejected[0]

def test_non_string_id_and_title(proc):
    feats,exs,spans,st = one(proc, row(id=42, title=7))
    assert st['ids_coerced'] == 1 and exs[0]['example_id'] == '42' and exs[0]['title'] == '7' and set(feats['example_id']) == {'42'}

def test_long_question_truncated(tok):
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)
    q = 'Where were the Normans ' + 'and where else ' * 30 + '?'
    feats,exs = p.featurize([row(question=q), row(id='q2')])
    assert p.stats['questions_truncated'] == 1
    qtoks = tok(q.lstrip(), add_special_tokens=False)['input_ids']
    f = feats[0]
    assert f['input_ids'][1:17] == qtoks[:16] and f['input_ids'][17] == tok.sep_token_id  # [CLS] 16 question tokens [SEP] context
    assert all(len(x) <= 64 for x in feats['input_ids'])
    assert [s for s in labelled_spans(feats, exs) if s][:1] == ['Normandy']

def test_duplicate_ids(proc):
    feats,exs = proc.featurize([row(), row(question='Where is Normandy?'), row(question='Which region?'), row(id='q1-dup1', question='x?')])
    assert exs['example_id'] == ['q1', 'q1-dup1', 'q1-dup2', 'q1-dup1-dup1']
    assert proc.stats['duplicate_ids'] == 3 and proc.stats['examples'] == 4
    assert set(feats['example_id']) == set(exs['example_id'])

def test_malformed_json_line(tok, tmp_path):
    fn = tmp_path/'bad.jsonl'
    lines = [json.dumps(row(id=f'q{i}')) for i in range(5)]
    lines[2] = '{"id": "q2", "context": "oops'
    fn.write_text('\n'.join(lines) + '\n')
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)
    with pytest.raises(ValueError) as e: p.process_dataset_streaming(fn)
    assert str(fn) in str(e.value) and 'line 3' in str(e.value) and "on_bad_record='skip'" in str(e.value)
    p.on_bad_record = 'skip'
    cm = ChunkedCacheManager(tmp_path/'c')
    p.process_dataset_streaming(fn, cache_manager=cm)
    assert p.stats['records_rejected'] == 1 and p.stats['examples'] == 4
    assert cm.load_examples(fn, 'train')['example_id'] == ['q0', 'q1', 'q3', 'q4']
    assert cm.manifest(fn, 'train')['counts']['records_rejected'] == 1
    assert 'line 3' in p.rejected[0]

def test_malformed_nested_json(tok, tmp_path):
    fn = tmp_path/'bad.json'
    txt = sample_data('squad-v2/dev-v2.0-subset.json').read_text()
    i = txt.index('"question"', 5000)
    fn.write_text(txt[:i] + txt[i+1:])  # drop a quote
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False, on_bad_record='skip')
    with pytest.raises(ValueError) as e: p.process_dataset_streaming(fn)
    assert str(fn) in str(e.value) and f"line {txt[:i].count(chr(10)) + 1}" in str(e.value)

def test_bad_record_in_a_file_names_file_line_and_fix(tok, tmp_path):
    """A well-formed record that can't be an example: the error names the file, the line (JSONL), the article/paragraph/question
    (nested JSON) or the row (Parquet), what is wrong and the fix; with on_bad_record='skip' it is skipped and counted"""
    import pyarrow as pa, pyarrow.parquet as pq
    rows = [row(id=f'q{i}') for i in range(4)]
    rows[2] = row(id='q2', context='  ')
    jl = tmp_path/'rows.jsonl'
    jl.write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
    nested = tmp_path/'nested.json'
    qas = [dict(id=r['id'], question=r['question'], answers=[dict(text='Normandy', answer_start=20)]) for r in rows]
    qas[1]['question'] = 7
    nested.write_text(json.dumps({'data': [{'title': 'T', 'paragraphs': [{'context': CTX, 'qas': qas[:1]}, {'context': CTX, 'qas': qas[1:]}]}]}))
    pqf = tmp_path/'rows.parquet'
    pq.write_table(pa.Table.from_pylist([{**r, 'context': r['context'] or ''} for r in rows]), pqf)
    for fn,where,what in ((jl, 'line 3', 'empty context'), (nested, 'article 0, paragraph 1, question 0', "'question' must be a string"),
                          (pqf, 'row 2', 'empty context')):
        p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)
        with pytest.raises(BadRecordError) as e: p.process_dataset_streaming(fn)
        msg = str(e.value)
        assert f"{fn}: {where}" in msg and what in msg and "on_bad_record='skip'" in msg and 'Fix the record' in msg, msg
        p.on_bad_record = 'skip'
        p.process_dataset_streaming(fn)
        assert p.stats['records_rejected'] == 1 and p.stats['examples'] == 3 and p.rejected[0].startswith(f"{fn}: {where}")

def test_not_a_fast_tokenizer():
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    slow = BertTokenizerLegacy(vocab_file=str(sample_data('bert-base-uncased')/'vocab.txt'))
    with pytest.raises(TypeError) as e: StreamingSquadProcessor(slow)
    assert 'not a fast tokenizer' in str(e.value) and 'offsets' in str(e.value) and 'use_fast=True' in str(e.value)

def test_settings_errors(tok):
    with pytest.raises(ValueError, match='must exceed doc_stride'): StreamingSquadProcessor(tok, 128, 64, verbose=False)
    with pytest.raises(ValueError, match='streaming_chunk_size'): StreamingSquadProcessor(tok, streaming_chunk_size=0, verbose=False)
    with pytest.raises(ValueError, match='on_bad_record'): StreamingSquadProcessor(tok, on_bad_record='ignore', verbose=False)
    with pytest.raises(ValueError, match='max_memory_gb'): StreamingSquadProcessor(tok, max_memory_gb=-1, verbose=False)
    p = StreamingSquadProcessor(tok, verbose=False, progress=False)
    with pytest.raises(FileNotFoundError): p.process_dataset_streaming('./no/such/file.json')
    with pytest.raises(ValueError, match='max_n_segs'): p.process_dataset_streaming([row()], max_n_segs=0)
    with pytest.raises(ValueError, match="pass name="): p.process_dataset_streaming([row()], cache_manager=ChunkedCacheManager('/tmp/x'))
    p.streaming_chunk_size = -3
    with pytest.raises(ValueError, match='streaming_chunk_size'): p.process_dataset_streaming([row()])

def corrupt(rows, rng):
    "Random damage to the gold answers of clean rows: wrong/negative/huge/float/string starts, whitespace and unicode variants, absent texts"
    out = []
    for r in rows:
        a = r['answers']
        if not a['text']: out.append(r); continue
        t,s = a['text'][0],a['answer_start'][0]
        k = rng.randrange(8)
        if k == 0: s = s + rng.choice([-7, -1, 1, 13, 250])
        elif k == 1: s = -rng.randrange(1, 100)
        elif k == 2: s = 10**6
        elif k == 3: s = float(s)
        elif k == 4: s = str(s + rng.choice([0, 3]))
        elif k == 5: t = t.replace(' ', '\u00a0  ')
        if k == 6: out.append({**r, 'answers': {'text': [t + ' zzqx'], 'answer_start': [s]}}); continue
        out.append({**r, 'answers': {'text': [t] + a['text'][1:], 'answer_start': [s] + a['answer_start'][1:]}})
    return out

@pytest.mark.parametrize('which,n_mem,seed', [('tok', 0, 0), ('tok', 4, 1), ('xlnet', 0, 2), ('xlnet', 4, 3)])
def test_property_labels_point_at_the_answer(which, n_mem, seed, request):
    """Over every feature of damaged SQuAD rows, for both tokenizer styles, with and without memory tokens: a label covers the
    answer the example was placed at, with the fewest tokens (no span that is not the answer), on context tokens only; a window
    whose context holds that whole answer is labelled (not CLS); an example whose answers can't be placed is CLS everywhere"""
    import copy
    from fastai_memstream.squad import configure_memory_tokens
    tk = request.getfixturevalue(which)
    if n_mem: tk = copy.deepcopy(tk); configure_memory_tokens(tk, n_mem)
    rng = random.Random(seed)
    rows = corrupt(squad_rows(), rng)
    p = StreamingSquadProcessor(tk, 128, 32, progress=False, verbose=False)
    assert p.n_mem == n_mem
    feats,exs = p.featurize(rows)
    feats,exs = list(feats),list(exs)
    by_id = {e['example_id']: e for e in exs}
    n = n_tight = 0
    for f,span in zip(feats, labelled_spans(feats, exs)):
        e = by_id[f['example_id']]
        ctx,golds,starts = e['context'],e['answers']['text'],e['answers']['answer_start']
        placed = [(t, s) for t,s in zip(golds, starts) if s >= 0]
        off = f['offset_mapping']
        inctx = [k for k,o in enumerate(off) if o[0] >= 0]
        if span is None:
            if placed:  # CLS only when the window's context does not hold the whole placed answer
                t,s = placed[0]
                if ctx[s:s+len(t)] == t: assert not (off[inctx[0]][0] <= s and off[inctx[-1]][1] >= s + len(t)), (f['example_id'], f['segment_index'])
            continue
        n += 1
        assert placed, f['example_id']
        assert any(isinstance(g, str) and g.strip() and norm(g) in norm(span) for g in golds), (span, golds)
        a,b = f['start_positions'],f['end_positions']
        assert a <= b and all(off[k][0] >= 0 for k in range(a, b+1))  # only context tokens, no memory or special token inside
        t,s = placed[0]
        if ctx[s:s+len(t)] == t:  # placed by position or by its exact text: the label is the tightest cover of [s, s+len(t))
            n_tight += 1
            assert off[a][0] <= s and off[b][1] >= s + len(t), (f['example_id'], span, t)
            assert a == b or (off[a+1][0] > s and off[b-1][1] < s + len(t)), (f['example_id'], span, t)
    st = p.stats
    assert n > 50 and n_tight > 0.8*n and st['answers_repaired'] > 10 and st['answers_unplaced'] > 0 and st['answer_starts_coerced'] > 0
    for e in exs:  # an example without any placeable answer is unanswerable in every window
        if not any(s >= 0 for s in e['answers']['answer_start']):
            assert all(f['start_positions'] == f['cls_index'] for f in feats if f['example_id'] == e['example_id'])

def test_few_mb_context_streams_in_bounded_memory(tok):
    "A 4 MB context: its windows are built at once but as compact arrays; peak RSS growth is measured and bounded"
    text = ' '.join(sample_data('wikitext-2/valid.txt').read_text().split())
    ctx = ' '.join([text]*4)[:4_000_000]
    ans_at = ctx.index(' ', 3_000_000) + 1
    ans = ctx[ans_at:ctx.index(' ', ans_at)]
    r = dict(id='big', context=ctx, question='What is in the middle?', answers={'text': [ans], 'answer_start': [ans_at]})
    p = StreamingSquadProcessor(tok, 384, 128, progress=False, verbose=False)
    with MemorySampler(interval=0.01) as ms:
        base = ms.current_mb
        feats,exs = p.featurize([r])
    grow = ms.peak_mb - base
    ids = feats['input_ids']
    n_ctx = [sum(o[0] >= 0 for o in f) for f in feats['offset_mapping']]
    assert len(feats) > 1000 and all(len(x) <= 384 for x in ids)
    assert all(n == n_ctx[0] for n in n_ctx[:-1])  # full windows
    spans = [s for s in labelled_spans(feats, exs) if s]
    assert spans and all(ans in s for s in spans)
    print(f"4 MB context: {len(feats)} windows, peak RSS growth {grow:.0f} MB")
    assert grow < 500, grow
