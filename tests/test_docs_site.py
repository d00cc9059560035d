"""Browser test of the built documentation site: build it first with `python tools/build_docs.py`.

The site (TSFAST_LITE_DOCS_DIR, default _docs/) is served on 127.0.0.1 and opened in headless Chromium (Debian package
`chromium`) through the Chrome DevTools Protocol. Each page must load without console errors, show its plots as <img>
elements that really loaded, and the navigation must list the chapters in notebook order. Screenshots go to
TSFAST_LITE_SCREENSHOTS (default _docs_screenshots/). Check some pages only with e.g.
`pytest tests/test_docs_site.py -k dataloaders`.
"""
import functools, http.server, itertools, json, os, re, shutil, signal, subprocess, tempfile, threading, time, urllib.request
from base64 import b64decode
from pathlib import Path
import pytest

# Needs a built site: deselected from the plain `pytest` run (see pyproject.toml), run by .ci/run after the build
# with `pytest -m site tests/test_docs_site.py`.
pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
DOCS = Path(os.environ.get('TSFAST_LITE_DOCS_DIR', ROOT/'_docs'))
SHOTS = Path(os.environ.get('TSFAST_LITE_SCREENSHOTS', ROOT/'_docs_screenshots'))
BUILD = 'python tools/build_docs.py'

# page (path in the site, without .html) -> the least number of plots (<img> in the page body) it must show
PAGES = {
    'index': 0,
    'guide/tutorial_silverbox': 1,  # nbs/guide/00_tutorial_silverbox.ipynb
    '00_data/dataloaders': 1,       # API page: show_doc output and a show_batch plot
    '01_models/nonlinear_ss': 1,    # equations (KaTeX) and figures
}
MATH_PAGE = '01_models/nonlinear_ss'
API_PAGE, API_SYMBOLS = '00_data/dataloaders', ['create_dls', 'SeqDataLoaders']

@pytest.fixture(scope='module')
def site():
    "Base URL of the built site, served from a thread (None when there is no site: the tests then fail)"
    if not (DOCS/'index.html').is_file(): yield None; return
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(DOCS)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown(); srv.server_close()

class Chromium:
    "Headless Chromium driven through the DevTools protocol over a websocket"
    def __init__(self, exe, tmp):
        from websockets.sync.client import connect
        self.proc = subprocess.Popen([exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--no-first-run', f'--user-data-dir={tmp}', '--hide-scrollbars',
            '--remote-debugging-port=0', '--window-size=1280,900', 'about:blank'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # its own process group
        port_file, end = Path(tmp)/'DevToolsActivePort', time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > end: raise RuntimeError(f'{exe} did not start')
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=30))
        self.ws = connect(next(t for t in targets if t['type'] == 'page')['webSocketDebuggerUrl'], max_size=None).__enter__()
        self.ids, self.events = itertools.count(1), []
        for domain in ('Page', 'Runtime', 'Log'): self.send(f'{domain}.enable')
        self.send('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def send(self, method, timeout=60, **params):
        "Call `method` and return its result; events arriving meanwhile are kept in `self.events`"
        i, end = next(self.ids), time.monotonic() + timeout
        self.ws.send(json.dumps(dict(id=i, method=method, params=params)))
        while True:
            msg = json.loads(self.ws.recv(timeout=max(end - time.monotonic(), 0.01)))
            if msg.get('id') == i:
                if 'error' in msg: raise RuntimeError(f'{method}: {msg["error"]}')
                return msg['result']
            self.events.append(msg)

    def js(self, expr):
        r = self.send('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'{expr}: {r["exceptionDetails"]}')
        return r['result'].get('value')

    def goto(self, url, timeout=60):
        "Open `url`, wait for the load event and for every image, then collect what the console said"
        self.events.clear()
        self.send('Page.navigate', url=url)
        end = time.monotonic() + timeout
        while not any(e.get('method') == 'Page.loadEventFired' for e in self.events):
            if time.monotonic() > end: raise TimeoutError(f'{url} did not load in {timeout}s')
            self.js('1')
            time.sleep(0.05)
        self.js('Promise.all([...document.images].map(i => i.complete ? 0 : new Promise(r => i.onload = i.onerror = r)))')
        time.sleep(0.5); self.js('1')  # let late errors (scripts, workers) arrive

    def console_errors(self):
        res = []
        for e in self.events:
            m, p = e.get('method'), e.get('params', {})
            if m == 'Runtime.exceptionThrown': res.append(p['exceptionDetails'].get('exception', {}).get('description')
                                                          or p['exceptionDetails'].get('text'))
            elif m == 'Runtime.consoleAPICalled' and p['type'] in ('error', 'assert'):
                res.append(' '.join(str(a.get('value', a.get('description'))) for a in p['args']))
            elif m == 'Log.entryAdded' and p['entry']['level'] == 'error': res.append(f"{p['entry']['text']} {p['entry'].get('url', '')}")
        return res

    def screenshot(self, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b64decode(self.send('Page.captureScreenshot', format='png')['data']))

    def close(self):
        "Close the connection and stop Chromium with the processes it started (its process group)"
        self.ws.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try: os.killpg(self.proc.pid, sig); self.proc.wait(10); break
            except ProcessLookupError: break
            except subprocess.TimeoutExpired: pass

@pytest.fixture(scope='module')
def browser():
    exe = os.environ.get('CHROMIUM') or next(filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)
    if exe is None: pytest.fail('Chromium not found: `apt-get install -y chromium` (or set CHROMIUM to its path)')
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        b = Chromium(exe, tmp)
        try: yield b
        finally: b.close()

def open_page(browser, site, page):
    if site is None: pytest.fail(f'No built docs site in {DOCS} (no index.html): build it with `{BUILD}` first')
    url = f'{site}{page}.html'
    try: urllib.request.urlopen(url, timeout=30)
    except urllib.error.HTTPError as e:
        pytest.fail(f'{page}.html is not in {DOCS} ({e.code}): does its notebook exist? Rebuild with `{BUILD}`')
    browser.goto(url)

@pytest.mark.parametrize('page', list(PAGES))
def test_page(page, site, browser):
    "The page loads with no console error, with its title, its plots loaded, and no notebook machinery left in it"
    open_page(browser, site, page)
    name = page.replace('/', '__')
    browser.screenshot(SHOTS/f'{name}.png')
    assert browser.console_errors() == [], f'console errors on {page}'
    assert browser.js("document.querySelector('article h1')?.textContent.trim()"), f'{page} has no title'
    imgs = browser.js("[...document.querySelectorAll('article img')].map(i => ({src: i.src, w: i.naturalWidth}))")
    assert [i for i in imgs if i['w'] == 0] == [], f'images that did not load on {page}'
    plots = [i for i in imgs if re.search(r'_files/[^/]+\.png$', i['src'])]
    assert len(plots) >= PAGES[page], f'{page} shows {len(plots)} plots, expected at least {PAGES[page]}'
    if plots:
        browser.js("document.querySelector('article img[src*=\"_files/\"]').scrollIntoView()")
        time.sleep(0.5)  # the header's title animation after a scroll
        browser.screenshot(SHOTS/f'{name}_plot.png')
    code = browser.js("[...document.querySelectorAll('article pre')].map(p => p.innerText)")
    for leftover in (r'^\s*#\|', r'\bshow_doc\(', r'\bnbdev_export\('):  # directives and nbdev calls stay hidden
        assert not [c for c in code if re.search(leftover, c, re.M)], f'{leftover!r} in code shown on {page}'

def test_api_docs(site, browser):
    "show_doc rendered each exported symbol as a heading followed by its signature"
    open_page(browser, site, API_PAGE)
    heads = browser.js("""[...document.querySelectorAll('article h3, article h4')].map(h =>
        [h.firstChild.textContent.trim(), h.nextElementSibling?.innerText || ''])""")
    for sym in API_SYMBOLS:
        sig = [s for h, s in heads if h == sym]
        assert sig, f'no API heading for {sym} on {API_PAGE}; headings: {[h for h, _ in heads]}'
        assert re.search(rf'\b{sym}\s*\(', sig[0]), f'no signature under {sym}: {sig[0][:200]}'

def _notebook_pages():
    "Pages the notebooks under nbs/ give, in notebook order (index first)"
    from nbdev.config import nbpath2html
    nbs = sorted((p.relative_to(ROOT/'nbs') for p in (ROOT/'nbs').rglob('*.ipynb')
                  if not any(s[0] in '._' for s in p.relative_to(ROOT/'nbs').parts)), key=lambda p: p.parts)
    return ['index.html'] + [str(nbpath2html(p)) for p in nbs if p != Path('index.ipynb')]

def test_navigation_order(site, browser):
    "The sidebar lists Home, then the chapters in notebook order (00_data, 01_models, ..., guide), every page in order"
    open_page(browser, site, 'index')
    nav = browser.js("""(() => { const top = document.querySelector('nav.md-nav--primary > ul.md-nav__list');
        return {first: top.children[0].querySelector('a').getAttribute('href'),
                sections: [...top.children].filter(li => li.classList.contains('md-nav__item--nested'))
                                          .map(li => li.querySelector(':scope > label').textContent.trim()),
                links: [...top.querySelectorAll('a.md-nav__link[href]')].map(a => a.href).filter(h => !h.includes('#'))} })()""")
    pages = _notebook_pages()
    chapters = list(dict.fromkeys(p.split('/')[0] for p in pages if '/' in p))
    assert nav['first'] in ('index.html', '.', './'), f"the first entry is not the home page: {nav['first']}"
    want = [re.sub(r'^\d+_', '', c).capitalize() for c in chapters]
    assert nav['sections'] == want, f"chapters {nav['sections']} instead of {want} (site stale? rebuild with `{BUILD}`)"
    got = [h.removeprefix(site) for h in nav['links']]
    assert got == pages, f'navigation out of order or stale (rebuild with `{BUILD}`): {got}'
    browser.screenshot(SHOTS/'navigation.png')

def test_math_rendered(site, browser):
    "Equations are typeset by KaTeX (vendored, offline): rendered elements, and no TeX source left in the text"
    open_page(browser, site, MATH_PAGE)
    time.sleep(0.5)
    n = browser.js("document.querySelectorAll('article .katex').length")
    assert n >= 5, f'{n} KaTeX elements on {MATH_PAGE}: is tools/katex copied into the site? Rebuild with `{BUILD}`'
    text = browser.js("[...document.querySelectorAll('article p, article li')].map(e => e.innerText).join(' ')")
    left = re.findall(r'\\[(\[]|\$[^$\s][^$]{0,40}\$', text)
    assert not left, f'TeX left unrendered on {MATH_PAGE}: {left[:5]}'
    browser.js("document.querySelector('article .katex-display, article .katex').scrollIntoView()")
    browser.screenshot(SHOTS/f"{MATH_PAGE.replace('/', '__')}_math.png")

# ------------------------------------------------------------------ page hygiene: read as documentation, not a log
import html as _html

_NOISE = {
    'a traceback': re.compile(r'Traceback \(most recent call last\)'),
    'an ANSI escape code': re.compile(r'\x1b\[|\[\d{1,2}(;\d{1,2})*m(?=\S)'),
    'a local path': re.compile(r'(?<![\w.])(/root/|/tmp/|/home/|/Users/|/work/|[\w/.-]*site-packages/|[\w/.-]*\.venv/|<ipython-input-)'),
    'an object repr with a memory address': re.compile(r'<[\w. ]+ at 0x[0-9a-fA-F]{6,}>'),
    'a warning': re.compile(r'\b[A-Z]\w*Warning: |^\s*warn\(', re.M),
}

def _article(page_html):
    m = re.search(r'<article.*?</article>', page_html, re.S)
    return m.group(0) if m else page_html

def _shown_text(page_html):
    "What a reader sees of a page except code inputs (syntax-highlighted blocks): outputs, prose, tables"
    a = _article(page_html)
    blocks = re.findall(r'<div class="[^"]*highlight[^"]*"><pre>.*?</pre></div>', a, re.S)
    for b in blocks:   # an input block carries pygments' token spans; an output block is plain text
        if re.search(r'<span class="(?!\s*")[\w ]+">', b): a = a.replace(b, '')
    return _html.unescape(re.sub(r'<[^>]+>', '', a))

def _site_pages():
    if not (DOCS/'index.html').is_file(): pytest.fail(f'No built docs site in {DOCS}: build it with `{BUILD}` first')
    return sorted(p for p in DOCS.rglob('*.html') if p.name != '404.html' and 'assets' not in p.parts)

def test_pages_have_no_notebook_noise():
    "No page shows a traceback, an ANSI escape, a local path, an object's memory address or a warning"
    found = []
    for p in _site_pages():
        text = _shown_text(p.read_text(encoding='utf-8'))
        for what, pat in _NOISE.items():
            if m := pat.search(text):
                found.append(f"{p.relative_to(DOCS)}: {what}: ...{text[max(0, m.start() - 60):m.end() + 60]!r}...")
    assert not found, 'notebook noise on the site:\n' + '\n'.join(found)

def test_anchors_resolve():
    "Every link to a page and an anchor of the site lands on a page that exists and an element with that id"
    ids, missing = {}, []
    def ids_of(p):
        if p not in ids: ids[p] = set(re.findall(r'\bid="([^"]+)"', p.read_text(encoding='utf-8'))) if p.is_file() else None
        return ids[p]
    for p in _site_pages():
        for href in re.findall(r'<a [^>]*href="([^"]+)"', _article(p.read_text(encoding='utf-8'))):
            if re.match(r'[a-z][\w+.-]*:', href) or href.startswith('//'): continue     # external
            path, _, frag = _html.unescape(href).partition('#')
            target = (p.parent/path).resolve() if path else p
            if target.is_dir(): target = target/'index.html'
            have = ids_of(target)
            if have is None: missing.append(f"{p.relative_to(DOCS)} -> {href}: no such page")
            elif frag and frag not in have: missing.append(f"{p.relative_to(DOCS)} -> {href}: no anchor #{frag}")
    assert not missing, f'{len(missing)} broken link(s):\n' + '\n'.join(missing)

def test_wide_tables_and_code_fit(site, browser):
    "At 1400 px the Benchmarks page shows the columns a reader came for (ours, target, met, best published) without "
    "scrolling, and no code block on any page is clipped (long lines wrap)"
    browser.send('Emulation.setDeviceMetricsOverride', width=1400, height=1000, deviceScaleFactor=1, mobile=False)
    try:
        for page in [str(p.relative_to(DOCS).with_suffix('')) for p in _site_pages()]:   # every page
            open_page(browser, site, page)
            clipped = browser.js("[...document.querySelectorAll('article pre > code')].filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.innerText.slice(0, 80))")
            assert clipped == [], f'code clipped on {page}: {clipped[:3]}'
        open_page(browser, site, 'guide/benchmarks')
        cols = browser.js("""(() => { const t = [...document.querySelectorAll('article table')].find(t => t.innerText.includes('ours: mean'));
            const box = t.parentElement.getBoundingClientRect();
            return [...t.querySelectorAll('th')].map(th => [th.innerText.trim(), th.getBoundingClientRect().right <= box.right + 1]) })()""")
        visible = [c for c, v in cols if v]
        for want in ('benchmark', 'test set', 'ours: mean ± std', 'target', 'met', 'best published'):
            assert any(c.replace('\n', ' ') == want for c in visible), f"{want!r} is off-screen at 1400 px: visible {visible}"
    finally: browser.send('Emulation.clearDeviceMetricsOverride')
