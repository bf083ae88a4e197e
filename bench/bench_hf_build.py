"""Raw text to the first batch with a Hugging Face fast tokenizer: `DiskLMDataset.from_texts(..., tok=hf_tok)` against the
`run_clm` recipe (`datasets` `map(tokenizer, batched=True, num_proc=2)` then `group_texts`) and fastai's spaCy pipeline.

    python bench/bench_hf_build.py            # WikiText-2 sample repeated 4x (4.5 MB) and 32x (36 MB); spaCy on 1x
    python bench/bench_hf_build.py --quick    # 10 articles (smoke test)

Both HF sides read the same articles from a JSON-lines file (the recipe with `load_dataset('json')`, ours streaming the lines),
use the shipped BERT WordPiece tokenizer and 2 processes, and run in fresh processes with TOKENIZERS_PARALLELISM=false.
The token ids are checked equal (xxh3 of the concatenated ids of every document). fastai's spaCy pipeline
(`TextDataLoaders.from_df(is_lm=True)`, 2 processes) is too slow for the large sizes: it runs on the 1x slice, beside ours on the
same slice. Each HF side runs `--repeat` times (default 3), alternating, and the table shows each side's median run (the
ratios of every pair go to stderr): on a shared machine the load changes from one run to the next. Peak RSS is sampled every 50 ms; `RSS growth` is over the process after its imports (the text stays on disk).
"""
import argparse, itertools, json, os, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from lm_bench_utils import PeakSampler, proc_mem, run_fresh, table, machine

BS,SEQ_LEN,BLOCK = 64,72,512

def write_jsonl(fn, mult, n_articles):
    "The WikiText-2 sample's articles, repeated `mult` times, one JSON object per line; its size in MB"
    from fastai_memstream.text import wikitext_df
    arts = wikitext_df(n_articles=n_articles).text.tolist()
    with open(fn, 'w', encoding='utf-8') as f:
        for _ in range(mult):
            for t in arts: f.write(json.dumps({'text': t}) + '\n')
    return sum(len(t.encode('utf-8')) for t in arts)*mult/1e6

def read_jsonl(fn):
    with open(fn, encoding='utf-8') as f:
        for l in f: yield json.loads(l)['text']

def ids_digest(chunks):
    "xxh3 and length of the concatenation of `chunks` of token ids, as uint32"
    import numpy as np, xxhash
    h,n = xxhash.xxh3_128(),0
    for c in chunks:
        a = np.asarray(c, dtype=np.uint32); h.update(a.tobytes()); n += len(a)
    return h.hexdigest(), n

def worker(side, fn, cache, n_workers):
    from transformers import AutoTokenizer
    from fastai_memstream.core import sample_data
    tok = AutoTokenizer.from_pretrained(sample_data('bert-base-uncased'))
    if side.startswith('memstream'):
        from fastai_memstream.text import DiskLMDataset
        from fastai_memstream.lm import DiskLMDataLoader
    elif side == 'recipe':
        import datasets, torch
        from transformers import default_data_collator
    else:
        import pandas as pd
        from fastai.text.all import TextDataLoaders
    m0 = proc_mem()
    with PeakSampler() as ps:
        t0 = time.time()
        if side.startswith('memstream'):
            ds = DiskLMDataset.from_texts(read_jsonl(fn), cache, tok=tok, n_workers=n_workers, source_id=f'bench:{fn}',
                                          force_rebuild=(side == 'memstream'), progress=False)
            b = DiskLMDataLoader(ds, bs=BS, seq_len=SEQ_LEN).one_batch()
        elif side == 'recipe':   # transformers examples/pytorch/language-modeling/run_clm.py, as written there
            raw = datasets.load_dataset('json', data_files=str(fn), split='train', cache_dir=str(Path(cache)/'hf_cache'))
            tokd = raw.map(lambda ex: tok(ex['text']), batched=True, num_proc=n_workers, remove_columns=['text'])
            def group_texts(examples):
                cat = {k: list(itertools.chain(*examples[k])) for k in examples.keys()}
                total = len(cat[list(examples.keys())[0]]) // BLOCK * BLOCK
                res = {k: [t[i:i+BLOCK] for i in range(0, total, BLOCK)] for k,t in cat.items()}
                res['labels'] = res['input_ids'].copy()
                return res
            lm = tokd.map(group_texts, batched=True, num_proc=n_workers)
            b = next(iter(torch.utils.data.DataLoader(lm, batch_size=BS, collate_fn=default_data_collator)))
        else:
            dls = TextDataLoaders.from_df(pd.DataFrame({'text': list(read_jsonl(fn))}), text_col='text', is_lm=True, valid_pct=0,
                                          bs=BS, seq_len=SEQ_LEN, n_workers=n_workers)
            b = dls.train.one_batch()
        dt = time.time() - t0
    if side.startswith('memstream'): dig = ids_digest([ds.data])
    elif side == 'recipe': dig = ids_digest(itertools.chain.from_iterable(bt['input_ids'] for bt in tokd.iter(batch_size=1000)))
    else: dig = (None, None)
    return dict(side=side, secs=dt, peak_rss_mb=ps.peak['rss_mb'], rss_growth_mb=ps.peak['rss_mb'] - m0['rss_mb'],
                total_growth_mb=ps.peak['total_rss_mb'] - m0['rss_mb'], digest=dig[0], tokens=dig[1])

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='10 articles, 1x and 8x (smoke test)')
    p.add_argument('--mults', type=int, nargs=2, default=None, help='repeats of the sample for the small and the 8x larger run (default 4 32)')
    p.add_argument('--spacy-mult', type=int, default=1, help='repeats of the sample for the spaCy comparison (0: skip it)')
    p.add_argument('--n-workers', type=int, default=2)
    p.add_argument('--repeat', type=int, default=None, help='runs of each side per size, alternating; the table shows the median (default 3, 1 with --quick)')
    p.add_argument('--json', default=None)
    p.add_argument('--worker', nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    os.environ['TOKENIZERS_PARALLELISM'] = 'false'
    if a.worker:
        side, fn, cache, nw = a.worker
        print(json.dumps(worker(side, fn, cache, int(nw)))); return
    mults, n_art = a.mults or ([1, 8] if a.quick else [4, 32]), (10 if a.quick else None)
    a.repeat = a.repeat or (1 if a.quick else 3)
    tmp = Path(tempfile.mkdtemp(prefix='bench_hf_build_'))
    rows = []
    try:
        for m in mults + ([a.spacy_mult] if a.spacy_mult else []):
            spacy = len(rows) >= 2*len(mults)
            fn = tmp/f'wt{m}.jsonl'; mb = write_jsonl(fn, m, n_art)
            sides = ('fastai-spacy', 'memstream') if spacy else ('recipe', 'memstream', 'memstream-reuse')
            runs = {s: [] for s in sides}
            for i in range(1 if spacy else a.repeat):   # alternate the sides: the load of a shared machine hits both alike
                for s in sides:   # the recipe gets a fresh `datasets` cache each time (it would reuse its map results), ours rebuilds (`force_rebuild`)
                    cache = tmp/(f'c{m}-recipe-{i}' if s == 'recipe' else f'c{m}-memstream')
                    runs[s].append(run_fresh(__file__, '--worker', s, fn, cache, a.n_workers))
            res = {s: sorted(rs, key=lambda r: r['secs'])[len(rs)//2] for s,rs in runs.items()}   # the median run of each side
            base = res[sides[0]]
            if not spacy and a.repeat > 1:
                ratios = sorted(b['secs']/o['secs'] for b,o in zip(runs[sides[0]], runs['memstream']))
                print(f"{m}x: speed ratios of the {a.repeat} alternating runs: {', '.join(f'{r:.2f}' for r in ratios)}", file=sys.stderr)
            if not spacy: assert res['memstream']['digest'] == base['digest'], f"token ids differ from the recipe's at {m}x: {res}"
            names = {'recipe': 'run_clm recipe (datasets.map + group_texts)', 'fastai-spacy': "fastai TextDataLoaders.from_df (spaCy)",
                     'memstream': 'DiskLMDataset.from_texts(tok=hf_tok)', 'memstream-reuse': 'DiskLMDataset.from_texts, store reused'}
            for s in sides:
                r = res[s]
                rows.append(dict(size=f"{m}x ({mb:.1f} MB)", side=names[s], secs=r['secs'], mbs=mb/r['secs'], speed=base['secs']/r['secs'],
                                 rss=r['peak_rss_mb'], grow=r['rss_growth_mb'], tot=r['total_growth_mb'], tokens=r['tokens'],
                                 same='yes' if not spacy and r['digest'] == base['digest'] else '-'))
            print(f"done {m}x", file=sys.stderr)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    big = [r for r in rows if r['side'].startswith('DiskLMDataset.from_texts(')][:2]
    print(f"Raw text to the first batch, BERT WordPiece tokenizer, WikiText-2 articles repeated, {a.n_workers} processes, median of {a.repeat} alternating runs; {machine()}")
    print(table(rows, [('size','text',''), ('side','build',''), ('secs','seconds','.1f'), ('mbs','MB/s','.2f'), ('speed','× first row','.2f'),
                       ('tokens','tokens',','), ('same','same ids',''), ('rss','peak RSS MB','.0f'), ('grow','RSS growth MB','.0f'),
                       ('tot','growth with workers MB','.0f')]))
    if len(big) == 2: print(f"RSS growth of our build: {big[0]['grow']:.0f} MB at {mults[0]}x, {big[1]['grow']:.0f} MB at {mults[1]}x "
                            f"({big[1]['grow']-big[0]['grow']:+.0f} MB for 8x the text)")
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows

if __name__ == '__main__': main()
