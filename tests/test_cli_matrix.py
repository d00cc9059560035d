"""Every documented path of the command line runs: each benchmark x recipe that `tsfast-lite --help` lists, with the
benchmark's files and through the offline fallback (the simulated Duffing oscillator), one short epoch each.

Run by CI (`python -m pytest -q -m cli_matrix tests/test_cli_matrix.py`, about 10 minutes on 2 cores); deselected from
the README's test command by `pyproject.toml`'s `addopts`."""
import os, json, warnings
from pathlib import Path
import pytest
import torch

from tsfast_lite import cli
from tsfast_lite.data import benchmarks
from tsfast_lite.recipes import RECIPES, BENCHMARK_NAMES, recipe_names, get_recipe

pytestmark = pytest.mark.cli_matrix
ROOT = os.environ.get('TSFAST_LITE_DATA')
CASES = [(b, r) for b in BENCHMARK_NAMES for r in recipe_names(b)]
SHORT = dict(epochs=1, n_batches=1)


def _short(b, r):
    "One short epoch; a recipe that ends in Levenberg-Marquardt does one iteration of it"
    rec = get_recipe(b, r)
    return dict(SHORT, **(dict(lm_iter=1) if rec.lm_iter else {}))


def _has_files(b) -> bool:
    try: getattr(benchmarks, f'{b}_dataset')(root=ROOT, cache=os.environ.get('TSFAST_LITE_CACHE'))
    except FileNotFoundError: return False
    except TypeError: return True   # a dataset function with other arguments: try the run itself
    return True


def _check_run(folder: Path, used: str, recipe: str, res):
    names = sorted(e.name for e in os.scandir(folder))
    for f in ('.tsfast-lite-run', 'learner.pkl', 'recipe.json', 'show_results.png'): assert f in names, (f, names)
    saved = json.loads((folder/'recipe.json').read_text())
    assert (saved['benchmark'], saved['name']) == (used, recipe)
    if res is not None:
        assert 'test_scores.csv' in names and 'test_predictions.png' in names
        assert torch.isfinite(torch.tensor(res.iloc[:, 2].to_numpy(dtype=float))).all(), res


@pytest.mark.parametrize('bench,recipe', CASES, ids=[f'{b}-{r}' for b, r in CASES])
def test_with_files(bench, recipe, tmp_path):
    if bench != 'duffing' and not _has_files(bench): pytest.skip(f"{bench}'s files are not under TSFAST_LITE_DATA")
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = cli.train_benchmark(bench, recipe, out=str(tmp_path/'run'), no_fallback=True, **_short(bench, recipe))
    _check_run(tmp_path/'run', bench, recipe, res)


FALLBACK = [(b, r) for b, r in CASES if b != 'duffing']


@pytest.mark.parametrize('bench,recipe', FALLBACK, ids=[f'{b}-{r}' for b, r in FALLBACK])
def test_offline_fallback(bench, recipe, tmp_path, monkeypatch, capsys):
    "The benchmark's files missing (no data folder, no network): the recipe trains on a simulated system (EMPS: the positioning system)"
    def missing(**kwargs): raise FileNotFoundError(f"{bench}: no file here (test)")
    monkeypatch.setattr(benchmarks, f'create_dls_{bench}', missing)
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = cli.train_benchmark(bench, recipe, out=str(tmp_path/'run'), **_short(bench, recipe))
    used, what = cli.FALLBACKS.get(bench, cli._DUFFING)
    assert f'training on {what} instead' in capsys.readouterr().err
    _check_run(tmp_path/'run', used, recipe, res)


def test_all_default_recipe(tmp_path, monkeypatch):
    "`tsfast-lite --benchmark all` without --recipe: the default recipe on every benchmark (files faked missing but two)"
    keep = ('cascaded_tanks', 'ced')
    for b in cli.FILE_BENCHMARKS:
        if b not in keep: monkeypatch.setattr(benchmarks, f'create_dls_{b}', lambda b=b, **kw: (_ for _ in ()).throw(FileNotFoundError(b)))
    if not all(_has_files(b) for b in keep): pytest.skip("Cascaded Tanks' or CED's files are not under TSFAST_LITE_DATA")
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        table = cli.train_benchmark('all', out=str(tmp_path/'all'), **SHORT)
    assert sorted(set(table['benchmark'])) == sorted(keep)
    assert (tmp_path/'all'/'results.md').exists()
