"""Open the HTML docs preview (`make docs`) in headless Chromium: every page has its title and its `show_doc` signatures.

`make docs` builds the preview and runs this file with MEMSTREAM_DOCS_CHECK=1, where a missing preview or a missing
Chromium is a failure. Under a plain `pytest tests/` (make test) it is skipped: the preview it would check may be
missing or stale, and checking it is `make docs`'s job. MEMSTREAM_DOCS_DIR checks a preview built elsewhere
(`python tools/docs_preview.py --out DIR`).

What a reader would see wrong is checked in the rendered page: markdown link syntax shown as text, and tables wider
than the page's text column (cut off on the right on the docs site).
"""
import json, os, re, shutil, subprocess, tempfile
from pathlib import Path
import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
DOCS = Path(os.environ.get('MEMSTREAM_DOCS_DIR') or ROOT/'build'/'docs')
STRICT = os.environ.get('MEMSTREAM_DOCS_CHECK') == '1'
CHROMIUM = next((shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None)
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']

if not STRICT: pytest.skip("the docs preview is checked by `make docs` (MEMSTREAM_DOCS_CHECK=1)", allow_module_level=True)

def _need(cond, why):
    if cond: return
    if STRICT: pytest.fail(why)
    pytest.skip(why)

def _pages():
    f = DOCS/'pages.json'
    return json.loads(f.read_text()) if f.exists() else []

def _chromium(*args, timeout=90):
    with tempfile.TemporaryDirectory() as prof:
        r = subprocess.run([CHROMIUM, *FLAGS, f'--user-data-dir={prof}', *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout

def test_preview_built():
    _need(bool(_pages()), f"no docs preview in {DOCS}: run `make docs`")
    nbs = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))
    test_eq_pages = sorted(p['notebook'] for p in _pages())
    assert test_eq_pages == nbs, f"preview pages {test_eq_pages} != notebooks {nbs}"

@pytest.mark.parametrize('page', [p['file'] for p in _pages()] or ['index.html'])
def test_page_in_chromium(page):
    _need(bool(_pages()), f"no docs preview in {DOCS}: run `make docs`")
    _need(CHROMIUM is not None, "Chromium is not installed (Debian: apt-get install chromium)")
    info = next(p for p in _pages() if p['file'] == page)
    dom = BeautifulSoup(_chromium('--dump-dom', (DOCS/page).as_uri()), 'html.parser')
    assert info['title'] in dom.title.get_text(), (dom.title, info['title'])
    assert dom.find('h1').get_text(strip=True) == info['title']
    heads = {h.get_text(strip=True).rstrip('¶').strip() for h in dom.find_all(['h2', 'h3', 'h4'])}
    code = '\n'.join(pre.get_text() for pre in dom.find_all('pre'))
    names = [n for n in info['show_doc'] if not n.split('.')[-1].startswith('__')]   # a module's `__getattr__` (moved names) is no API
    missing = [n for n in names if n not in heads or not re.search(rf'\b{re.escape(n.split(".")[-1])}\s*\(', code)]
    assert not missing, f"{page}: no rendered signature for {missing}"
    assert 'Traceback (most recent call last)' not in dom.get_text(), f"{page} shows a traceback"
    for t in dom.find_all(['pre', 'code', 'style', 'script']): t.decompose()
    literal = re.findall(r'\]\((?:https?://|[\w./-]*\.html)[^)\s]*\)', dom.get_text())
    assert not literal, (f"{page} shows markdown link syntax as text: {literal}. nbdev links a backticked name it knows "
                         "(`RSSLogger`) by itself, also inside a link written around it: write just the backticked name")

# Run in the page once it is laid out: the tables whose right edge passes the right edge of the text column
_MEASURE = """<script>(function(){
  const main = document.querySelector('main.memstream'), cs = getComputedStyle(main);
  const edge = main.getBoundingClientRect().right - parseFloat(cs.paddingRight);
  const wide = [...main.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > edge + 1).map(t =>
    Math.round(t.getBoundingClientRect().right - edge) + ' px too wide: ' + t.innerText.trim().split(/\\s+/).slice(0, 6).join(' '));
  const out = document.createElement('div'); out.id = 'memstream-wide'; out.textContent = JSON.stringify(wide);
  document.body.appendChild(out);
})();</script>"""

@pytest.mark.parametrize('page', [p['file'] for p in _pages()] or ['index.html'])
def test_tables_fit_the_page(page):
    "At 1280 px, no table is wider than the text column: the reader would scroll it sideways (nbs/styles.css) or, without that, see it cut off"
    _need(bool(_pages()), f"no docs preview in {DOCS}: run `make docs`")
    _need(CHROMIUM is not None, "Chromium is not installed (Debian: apt-get install chromium)")
    html = (DOCS/page).read_text(encoding='utf-8').replace('</body>', _MEASURE + '</body>', 1)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d)/page
        f.write_text(html, encoding='utf-8')
        dom = BeautifulSoup(_chromium('--window-size=1280,2000', '--dump-dom', f.as_uri()), 'html.parser')
    res = dom.find(id='memstream-wide')
    assert res is not None, f"{page}: the measuring script did not run"
    wide = json.loads(res.get_text())
    assert not wide, f"{page}: tables wider than the page (fewer columns, or one row per run instead of one column per run): {wide}"

def test_index_screenshot():
    _need(bool(_pages()), f"no docs preview in {DOCS}: run `make docs`")
    _need(CHROMIUM is not None, "Chromium is not installed (Debian: apt-get install chromium)")
    shot = DOCS/'index.png'
    shot.unlink(missing_ok=True)
    _chromium('--window-size=1280,1600', f'--screenshot={shot}', (DOCS/'index.html').as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
