"""Build a browsable HTML preview of the docs without Quarto, and generate README.md from nbs/index.ipynb.

nbdev renders its docs with Quarto, which cannot be installed everywhere (its PyPI package downloads a binary).
This script runs nbdev's own notebook processing (`proc_nbs`: hides `#| hide` cells, adds and executes `show_doc`,
writes front matter), then turns each processed notebook into a standalone HTML page with nbconvert, with a
navigation bar and an index page. The pages show the outputs stored in the notebooks (`nbdev-test --save`).

    python tools/docs_preview.py            # build the preview in build/docs
    python tools/docs_preview.py --readme   # write README.md from nbs/index.ipynb
    python tools/docs_preview.py --check-readme   # exit 1 if README.md is not what nbs/index.ipynb generates
"""
import argparse, copy, html, json, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT/'build'/'docs'

def _cfg():
    from nbdev.config import get_config
    return get_config(ROOT)

def _doc_url(cfg): return cfg.doc_url.rstrip('/') + '/' if cfg.doc_url else None

def process(file_glob=''):
    "Run nbdev's docs processing into _proc/ and return the processed notebooks, in sidebar order"
    from nbdev.serve import proc_nbs
    cache = proc_nbs(str(ROOT/'nbs'), n_workers=0, file_glob=file_glob)
    return sorted(p for p in Path(cache).glob('*.ipynb'))

def _front_matter(nb):
    "Title, description and output file from the raw front-matter cell nbdev writes"
    import yaml
    for c in nb['cells']:
        if c['cell_type'] == 'raw':
            src = ''.join(c['source']).strip()
            if src.startswith('---'):
                return yaml.safe_load(src.strip('-').strip()) or {}
    return {}

_DIRECTIVE = re.compile(r'^\s*#\|.*$\n?', re.M)
_QUARTO_ATTR = re.compile(r'\{(?:target|style|\.)[^}]*\}')

def _directives(src):
    return dict((m.group(1), m.group(2).strip()) for m in re.finditer(r'^\s*#\|\s*([\w-]+):?\s*(.*)$', src, re.M))

def _localize(text, cfg):
    "Strip Quarto-only attributes and point doc links at the local preview pages"
    text = _QUARTO_ATTR.sub('', text)
    url = _doc_url(cfg)
    if url: text = text.replace(url, '')
    return text

def _terminal(text:str)->str:
    "What a terminal shows for `text`: a carriage return moves back to the start of the line and later characters overwrite"
    out = []
    for line in text.split('\n'):
        buf,pos = [],0
        for ch in line:
            if ch == '\r': pos = 0; continue
            if pos < len(buf): buf[pos] = ch
            else: buf.append(ch)
            pos += 1
        out.append(''.join(buf).rstrip())
    return '\n'.join(out)

def clean_nb(nb, cfg):
    "A valid nbformat notebook from a processed one: Quarto directives applied, non-standard keys removed"
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb['cells']:
        if c['cell_type'] == 'raw': continue
        c.pop('has_sd', None)
        c['metadata'] = {k:v for k,v in c.get('metadata', {}).items() if k in ('tags',)}
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'code':
            d = _directives(src)
            c['source'] = _DIRECTIVE.sub('', src).strip('\n')
            tags = c.setdefault('metadata', {}).setdefault('tags', [])
            if d.get('echo') == 'false' or not c['source'].strip(): tags.append('remove_input')
            for o in c.get('outputs', []):
                if o.get('output_type') == 'stream': o['text'] = _terminal(''.join(o['text']))   # progress bars, as a console leaves them
                md = o.get('data', {}).get('text/markdown')
                if md is not None:
                    o['data']['text/markdown'] = _localize(''.join(md), cfg)
                    o['data'].pop('text/plain', None)
            if not c['source'].strip() and not c.get('outputs'): continue
        else:
            c['source'] = _localize(src, cfg)
        cells.append(c)
    nb['cells'] = cells
    return nb

_CSS = """
body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',sans-serif}
nav.memstream{position:fixed;top:0;left:0;bottom:0;width:230px;overflow:auto;background:#f6f8fa;border-right:1px solid #ddd;padding:14px;font-size:14px;box-sizing:border-box}
nav.memstream a{display:block;padding:4px 0;color:#0b5394;text-decoration:none} nav.memstream a.here{font-weight:bold}
nav.memstream .brand{font-weight:bold;font-size:16px;margin-bottom:10px}
main.memstream{margin-left:240px;padding:8px 20px;max-width:1100px}
header.memstream h1{margin-bottom:4px} header.memstream p.desc{color:#555;font-size:1.1em;margin-top:0}
"""

def _page_html(body, title, desc, nav):
    head = f'<header class="memstream"><h1>{html.escape(title)}</h1>' + (f'<p class="desc">{html.escape(desc)}</p>' if desc else '') + '</header>'
    body = re.sub(r'<title>.*?</title>', f'<title>{html.escape(title)} – fastai_memstream</title>', body, count=1, flags=re.S)
    body = body.replace('</head>', f'<style>{_CSS}</style></head>', 1)
    body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav + '<main class="memstream">' + head, body, count=1)
    return body.replace('</body>', '</main></body>', 1)

def _nav(pages, here):
    links = ''.join(f'<a href="{p["file"]}"{" class=here" if p["file"]==here else ""}>{html.escape(p["title"])}</a>' for p in pages)
    return f'<nav class="memstream"><div class="brand"><a href="index.html">fastai_memstream</a></div>{links}</nav>'

def build_preview(out=OUT):
    "Process every notebook and write one HTML page each, plus index.html, into `out`"
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    cfg = _cfg()
    procs = process()
    out = Path(out)
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    pages = []
    for p in procs:
        nb = json.loads(p.read_text())
        fm = _front_matter(nb)
        name = fm.get('output-file') or (re.sub(r'^\d+_', '', p.stem) + '.html')
        pages.append(dict(src=p, nb=nb, file=name, title=str(fm.get('title', p.stem)).replace('`', ''), desc=str(fm.get('description', '') or '').replace('`', '')))
    pages.sort(key=lambda d: (d['file'] != 'index.html', d['src'].name))
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    c.TemplateExporter.exclude_input_prompt = True
    c.TemplateExporter.exclude_output_prompt = True
    exporter = HTMLExporter(config=c, template_name='lab')
    manifest = []
    for d in pages:
        nb = nbformat.reads(json.dumps(clean_nb(d['nb'], cfg)), as_version=4)   # `reads` rejoins multi-line outputs (lists of str)
        nbformat.validate(nb)
        body,_ = exporter.from_notebook_node(nb)
        (out/d['file']).write_text(_page_html(body, d['title'], d['desc'], _nav(pages, d['file'])), encoding='utf-8')
        sigs = sorted(set(re.findall(r'^\s*show_doc\(\s*([\w.]+)', ''.join(
            ''.join(c['source']) for c in d['nb']['cells'] if c['cell_type'] == 'code'), re.M)))
        manifest.append(dict(file=d['file'], title=d['title'], notebook=d['src'].name, show_doc=sigs))
    (out/'pages.json').write_text(json.dumps(manifest, indent=1))
    print(f"wrote {len(pages)} pages to {out}")
    return manifest

def readme_text():
    "README.md content generated from the processed nbs/index.ipynb"
    cfg = _cfg()
    procs = [p for p in process(file_glob='index.ipynb') if p.name == 'index.ipynb']
    nb = clean_nb(json.loads(procs[0].read_text()), cfg)
    fm = _front_matter(json.loads(procs[0].read_text()))
    url = _doc_url(cfg) or ''
    parts = [f"# {fm.get('title', 'fastai_memstream')}\n", f"> {fm['description']}\n" if fm.get('description') else '',
             '<!-- WARNING: THIS FILE WAS AUTOGENERATED FROM nbs/index.ipynb BY tools/docs_preview.py --readme. DO NOT EDIT! -->\n']
    for c in nb['cells']:
        src = c['source']
        if c['cell_type'] == 'markdown':
            if 'AUTOGENERATED' in src: continue
            parts.append(re.sub(r'\]\((?!https?:|#)([\w.-]+\.html)', lambda m: '](' + url + m.group(1), src) + '\n')
            continue
        if 'remove_input' not in c['metadata'].get('tags', []) and src.strip(): parts.append(f"```python\n{src}\n```\n")
        for o in c.get('outputs', []):
            txt = o.get('text') if o.get('output_type') == 'stream' else (o.get('data', {}).get('text/markdown') or o.get('data', {}).get('text/plain'))
            if txt is None: continue
            txt = ''.join(txt).rstrip('\n')
            parts.append(txt + '\n' if o.get('data', {}).get('text/markdown') else f"```\n{txt}\n```\n")
    return '\n'.join(p for p in parts if p).rstrip() + '\n'

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--readme', action='store_true', help='write README.md from nbs/index.ipynb')
    ap.add_argument('--check-readme', action='store_true', help='fail if README.md is not what nbs/index.ipynb generates')
    ap.add_argument('--out', default=str(OUT))
    a = ap.parse_args()
    if a.readme or a.check_readme:
        txt = readme_text()
        if a.check_readme:
            if (ROOT/'README.md').read_text(encoding='utf-8') != txt:
                sys.exit("README.md differs from what nbs/index.ipynb generates: run `make readme` and commit README.md")
            print("README.md is up to date with nbs/index.ipynb")
        else:
            (ROOT/'README.md').write_text(txt, encoding='utf-8'); print("wrote README.md")
        return
    build_preview(a.out)

if __name__ == '__main__': main()
