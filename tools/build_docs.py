"""Build the documentation website offline, from the notebooks into _docs/ (no Quarto needed).

    python tools/build_docs.py [NOTEBOOK ...] [--jobs N] [--no-slow]

1. Every notebook under nbs/ is executed top to bottom in a fresh process with the repo root as working directory:
   all code cells, `#| slow` ones included, except `#| eval: false` ones.
2. nbdev's own doc processors (the ones `nbdev-docs` uses) turn it into a page: title and summary from the first
   markdown cell, `show_doc` API docs for exported symbols, `#| hide`/`#| export` cells removed, links to symbols.
3. nbconvert writes each page as Markdown with its plots as PNG files; mkdocs-material renders the site into _docs/,
   with one navigation section per notebook folder, in notebook order (00_data, 01_models, ..., guide), index first;
   equations ($...$, $$...$$) are rendered by KaTeX, vendored in tools/katex (no network needed).

Per-notebook and total timings are printed. Needs the `docs` extra: `pip install -e ".[docs]"`.
Users who have Quarto can still run `nbdev-docs` (nbs/_quarto.yml, nbs/nbdev.yml, nbs/sidebar.yml).
"""
import argparse, json, multiprocessing, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, SITE, WORK = ROOT/'nbs', ROOT/'_docs', ROOT/'_proc'/'.mkdocs'  # '.' keeps it out of nbdev's/Quarto's way
DOCS = WORK/'docs'
ASSETS = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp', '.pdf', '.csv'}
_re_dir = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def notebooks():
    "Notebooks in site order: index first, then by path (numbered folders first, then guide/)"
    nbs = [p.relative_to(NBS) for p in NBS.rglob('*.ipynb') if not any(s[0] in '._' for s in p.relative_to(NBS).parts)]
    return sorted(nbs, key=lambda p: (p != Path('index.ipynb'), p.parts))

def page_path(nb):
    "Same page names as `nbdev-docs` (numeric prefixes stripped): 00_data/01_dataloaders.ipynb -> 00_data/dataloaders.md"
    from nbdev.config import nbpath2html
    return nbpath2html(nb).with_suffix('.md')

_re_link = re.compile(r'\]\((?![a-zA-Z][\w+.-]*:|[#/])([^)\s#]+)\.(html|ipynb)(#[^)\s]*)?\)')

def local_links(md):
    "Point relative links to pages (`x.html` as nbdev writes them, or `NN_x.ipynb`) at their Markdown, for mkdocs to check"
    from nbdev.config import nbpath2html
    def _f(m): return f"]({nbpath2html(m[1] + '.ipynb').with_suffix('.md').as_posix() if m[2] == 'ipynb' else m[1] + '.md'}{m[3] or ''})"
    return _re_link.sub(_f, md)

_re_member = re.compile(r'\]\(([^)\s#]*)#([a-z]\w*)\.\w+\)')
_re_private = re.compile(r'\[([^\]]*)\]\([^)\s#]*#_\w*(?:\.\w+)?\)')

def symbol_anchors(md):
    """nbdev links a member as `page.html#class.member` and a private name as `page.html#_name`; pages have headings for
    public classes and functions only (a member is documented under its class): point members at their class, unlink private names"""
    return _re_member.sub(r'](\1#\2)', _re_private.sub(r'\1', md))

def _quarto_dirs(cell):
    "Pop the `#| key: value` lines nbdev leaves for Quarto from the top of a code cell; return them as a dict"
    lines, dirs = cell.source.splitlines(), {}
    while lines and (m := _re_dir.match(lines[0])): dirs[m[1]] = m[2].lower(); lines.pop(0)
    cell.source = '\n'.join(lines)
    return dirs

def _as_in_jupyter():
    "Outputs as Jupyter shows them: HTML progress bars and training tables; a display updated in place shows once"
    import fastprogress.fastprogress as fp
    fp.master_bar, fp.progress_bar = fp.NBMasterBar, fp.NBProgressBar  # before fastai imports them
    from IPython.core.displaypub import CapturingDisplayPublisher
    def publish(self, data, metadata=None, source=None, *, transient=None, update=False):
        out, did = dict(data=data, metadata=metadata, transient=transient, update=update), (transient or {}).get('display_id')
        old = [i for i, o in enumerate(self.outputs) if did and (o['transient'] or {}).get('display_id') == did]
        if update and old: self.outputs[old[0]] = out
        else: self.outputs.append(out)
    CapturingDisplayPublisher.publish = publish

def _flags(src:str) -> set:
    "The `#| flag` words of a cell's directive lines"
    return {w for l in src.splitlines() if l.startswith('#|') for w in l[2:].split()}

def _preview(nb, skip_flags):
    """A page built without its `#| slow` cells says so and shows the code that ran: each skipped cell is left out,
    the hidden quick stand-in just before it is shown instead, and a note at the top names the preview"""
    from fastcore.nbio import NbCell
    skipped = False
    cells = nb.cells
    for i, c in enumerate(cells):
        if c.cell_type != 'code' or not (set(skip_flags) & _flags(c.source)): continue
        skipped = True
        c['source'] = '#| include: false\n' + c.source
        prev = cells[i-1] if i else None
        if prev is not None and prev.cell_type == 'code' and 'hide' in _flags(prev.source):
            prev['source'] = '\n'.join(l for l in prev.source.splitlines() if l.strip() != '#| hide')
    if skipped:
        note = NbCell(len(cells), dict(cell_type='markdown', metadata={}, source=(
            '!!! note "Preview build"\n    This page was built without its slow cells (`tools/build_docs.py --no-slow`): '
            'where the full page trains on benchmark data, this preview shows the quick stand-in code it ran instead, '
            'on small or simulated data, so its numbers are not the benchmark\'s. The full build: '
            '`python tools/build_docs.py`.')))
        first = next((i for i, c in enumerate(cells) if c.cell_type == 'markdown'), -1)
        cells.insert(first + 1, note)

def render_nb(nb_rel, skip_flags=()):
    "Execute, process and write one notebook as Markdown + images under DOCS; return (title, seconds)"
    t0 = time.perf_counter()
    os.chdir(ROOT); sys.path.insert(0, str(ROOT))
    multiprocessing.set_start_method('fork', force=True)  # DataLoader workers etc. start as under nbdev-test
    _as_in_jupyter()
    import nbformat
    from fastcore.nbio import read_nb, nb2str
    from execnb.shell import CaptureShell
    from nbdev.process import Processor
    from nbdev.processors import FilterDefaults, exec_show_docs
    from nbconvert import MarkdownExporter
    from nbdev.config import get_config

    class exec_all(Processor):
        "Run every code cell (`#| slow` too, not `#| eval: false`) and the `show_doc` cells nbdev adds, in one shell"
        def begin(self):
            self.k, self.timeout = CaptureShell(nb_rel), get_config().cell_timeout or None  # nbdev-test's limit
            self.k.run_cell('from nbdev.showdoc import show_doc')
        def cell(self, cell):
            d = getattr(cell, 'directives_', {})
            if cell.cell_type != 'code' or d.get('eval', '').lower() == 'false' or set(skip_flags) & d.keys(): return
            self.k.cell(cell, timeout=self.timeout)
            if self.k.exc: raise RuntimeError(f'{nb_rel}, cell {cell.idx_}:\n{cell.source}\n{self.k.prettytb()}')

    class DocProcs(FilterDefaults):
        def base_procs(self): return [exec_all if p is exec_show_docs else p for p in super().base_procs()]

    nb = read_nb(NBS/nb_rel)
    if skip_flags: _preview(nb, skip_flags)
    DocProcs()(nb)
    fm = getattr(nb, 'frontmatter_', {})
    nb.cells = [c for c in nb.cells if c.cell_type != 'raw' or not c.source.startswith('---')]  # Quarto frontmatter
    for c in nb.cells:
        if c.cell_type != 'code': continue
        c.metadata.pop('execution', None)            # execnb's timings are not valid nbformat
        d = _quarto_dirs(c)
        tags = c.metadata.setdefault('tags', [])
        if d.get('include') == 'false': tags.append('remove_cell')
        if d.get('echo') == 'false' or not c.source.strip(): tags.append('remove_input')
        if d.get('output') == 'false': tags.append('remove_output')
    nb = nbformat.reads(nb2str(nb), as_version=4)
    nb.metadata['language_info'] = {'name': 'python'}  # ```python fences

    page = page_path(nb_rel)
    exp = MarkdownExporter(config={'TagRemovePreprocessor': dict(enabled=True, remove_cell_tags={'remove_cell'},
        remove_input_tags={'remove_input'}, remove_all_outputs_tags={'remove_output'})})
    body, res = exp.from_notebook_node(nb, resources={'unique_key': page.stem, 'output_files_dir': f'{page.stem}_files'})
    cfg = get_config()
    body = symbol_anchors(local_links(body.replace(f"{cfg.doc_host}{cfg.doc_baseurl}/", '../'*(len(page.parts)-1) or './')))  # API links stay local
    title = fm.get('title', page.stem)
    head = f'---\ntitle: {json.dumps(title)}\n---\n\n# {title}\n\n' + (f'> {fm["description"]}\n\n' if fm.get('description') else '')
    out = DOCS/page
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + body)
    for name, data in res.get('outputs', {}).items(): (out.parent/name).parent.mkdir(exist_ok=True); (out.parent/name).write_bytes(data)
    return title, time.perf_counter()-t0

MKDOCS = dict(site_name='tsfast_lite', docs_dir='docs', use_directory_urls=False,  # foo.html pages, as nbdev-docs makes
    theme=dict(name='material', font=False,  # font=False: no Google Fonts, the site works offline
               features=['navigation.sections', 'navigation.top', 'content.code.copy', 'search.highlight']),
    markdown_extensions=['tables', 'admonition', 'attr_list', 'md_in_html', 'pymdownx.details', 'pymdownx.superfences',
                         {'pymdownx.highlight': {'use_pygments': True}}, {'toc': {'permalink': True}},
                         {'pymdownx.arithmatex': {'generic': True}}],   # $...$ and $$...$$ for KaTeX (tools/katex)
    extra_javascript=['assets/katex/katex.min.js', 'assets/katex/contrib/auto-render.min.js', 'assets/katex/init.js'],
    extra_css=['assets/katex/katex.min.css', 'assets/site.css'],   # site.css: tools/site/site.css
    plugins=['search'])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='*', help='only these notebooks (paths under nbs/); default: all')
    ap.add_argument('--jobs', type=int, default=os.cpu_count() or 1, help='notebooks executed in parallel (default: one per core, each on one torch thread)')
    ap.add_argument('--no-slow', action='store_true', help='skip `#| slow` cells, as nbdev-test does (a quick preview)')
    args = ap.parse_args()
    if args.jobs > 1: os.environ.setdefault('OMP_NUM_THREADS', '1')   # notebooks side by side: one thread each, as nbdev-test
    t0 = time.perf_counter()
    os.chdir(ROOT)
    from nbdev.config import get_config
    from nbdev.doclinks import _build_modidx
    from nbdev.quarto import refresh_quarto_yml
    _build_modidx()                                   # as nbdev-docs does: symbol index for API links
    refresh_quarto_yml()                              # nbs/nbdev.yml (and nbs/_quarto.yml if missing) for nbdev-docs
    nbs = notebooks()
    if args.notebooks:
        want = {Path(os.path.abspath(p)).relative_to(NBS) if Path(p).exists() else Path(p) for p in args.notebooks}
        nbs = [nb for nb in nbs if nb in want]
    if not nbs: sys.exit(f'no notebooks to build under {NBS} (asked for: {args.notebooks or "all"})')
    shutil.rmtree(WORK, ignore_errors=True)
    for f in NBS.rglob('*'):                          # images etc. that markdown cells link to
        if f.suffix.lower() in ASSETS and not any(s[0] in '._' for s in f.relative_to(NBS).parts):
            (DOCS/f.relative_to(NBS)).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, DOCS/f.relative_to(NBS))
    shutil.copytree(ROOT/'tools'/'katex', DOCS/'assets'/'katex', ignore=shutil.ignore_patterns('README.md'))  # equations, offline
    shutil.copy(ROOT/'tools'/'site'/'site.css', DOCS/'assets'/'site.css')
    print(f'Executing {len(nbs)} notebooks (cwd {ROOT}):', flush=True)
    titles, failed = {}, []
    ctx = multiprocessing.get_context('spawn')       # a fresh interpreter per notebook, as in a fresh kernel
    with ProcessPoolExecutor(args.jobs, mp_context=ctx, max_tasks_per_child=1) as ex:
        skip = str(get_config().tst_flags).split() if args.no_slow else ()
        futs = {nb: ex.submit(render_nb, nb, skip) for nb in nbs}
        for nb, f in futs.items():
            try: titles[nb], secs = f.result(); print(f'  {secs:7.1f}s  {nb}', flush=True)
            except Exception as e: failed.append(nb); print(f'  FAILED   {nb}\n{e}', flush=True)
    if failed: sys.exit(f'Docs build failed in: {", ".join(map(str, failed))}')
    if not (DOCS/'index.md').exists():               # until nbs/index.ipynb exists: a plain home page
        (DOCS/'index.md').write_text(f"# {get_config().lib_name}\n\n> {get_config().get('description', '')}\n")

    import yaml
    nav, bar, sections = [{'Home': 'index.md'}], ['index.ipynb'][:(NBS/'index.ipynb').exists()], {}  # mkdocs nav; Quarto sidebar for nbdev-docs
    for nb in nbs:
        if nb == Path('index.ipynb'): continue
        if len(nb.parts) == 1: nav.append({titles[nb]: str(page_path(nb))}); bar.append(str(nb)); continue
        if nb.parts[0] not in sections:
            name = re.sub(r'^\d+_', '', nb.parts[0]).capitalize()
            sections[nb.parts[0]] = [], []
            nav.append({name: sections[nb.parts[0]][0]}); bar.append({'section': name, 'contents': sections[nb.parts[0]][1]})
        sections[nb.parts[0]][0].append({titles[nb]: str(page_path(nb))}); sections[nb.parts[0]][1].append(str(nb))
    # nbdev 3.3's own sidebar.yml drops the numbers from folder names (00_data/x.ipynb -> data/x.ipynb), so it is written
    # here; `custom_sidebar = true` in [tool.nbdev] keeps `nbdev-docs` from overwriting it
    sidebar = yaml.safe_dump({'website': {'sidebar': {'contents': bar}}}, sort_keys=False)
    if not args.notebooks: (NBS/'sidebar.yml').write_text(sidebar)
    cfg = get_config()
    conf = dict(MKDOCS, site_name=cfg.get('title', cfg.lib_name), site_description=cfg.get('description', ''),
                site_dir=str(SITE), nav=nav)
    (WORK/'mkdocs.yml').write_text(yaml.safe_dump(conf, sort_keys=False))
    t1 = time.perf_counter()
    subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--clean', '-f', str(WORK/'mkdocs.yml')], check=True,
                   env=os.environ | {'NO_MKDOCS_2_WARNING': '1'})
    print(f'  {time.perf_counter()-t1:7.1f}s  mkdocs build\nSite built in {time.perf_counter()-t0:.1f}s: {SITE}/index.html')

if __name__ == '__main__': main()
