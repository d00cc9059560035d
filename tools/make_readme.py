"""Write README.md from nbs/index.ipynb (nbdev-readme needs Quarto, which cannot be installed everywhere).

Markdown cells are copied, code cells become fenced Python blocks, outputs are left out (they live in the docs site).
`python tools/make_readme.py --check` exits 1 when README.md is out of date."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def readme_text() -> str:
    nb = json.loads((root/'nbs'/'index.ipynb').read_text())
    parts = ['<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->']
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#|'): continue
        parts.append(src if c['cell_type'] == 'markdown' else f"```python\n{src}\n```")
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    txt, out = readme_text(), root/'README.md'
    if '--check' in sys.argv:
        ok = out.exists() and out.read_text() == txt
        print('README.md is up to date' if ok else 'README.md is out of date: run python tools/make_readme.py')
        sys.exit(0 if ok else 1)
    out.write_text(txt)
    print(f'wrote {out}')
