"""Every documented path of the command line runs: each benchmark x recipe that `tsfast-lite --help` lists (every
benchmark spec), with the benchmark's files and through the offline fallback (its spec's simulated system), one short
epoch each.

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
    "One short epoch; a recipe that ends in Levenberg-Marquardt does one iteration of it, one that fine-tunes one epoch of that"
    rec = get_recipe(b, r)
    return dict(SHORT, **(dict(lm_iter=1) if rec.lm_iter else {}), **(dict(finetune_epochs=1) if rec.finetune else {}))


def _has_files(b) -> bool:
    spec = benchmarks.get_benchmark(b)
    if spec.simulated: return True
    try: spec.dataset(root=ROOT, cache=os.environ.get('TSFAST_LITE_CACHE'), progress=False)
    except FileNotFoundError: return False
    return True


def _files_missing(monkeypatch, missing):
    "Make the benchmarks in `missing` behave as if their files could not be had (no data folder, no network)"
    real = benchmarks.create_dls_benchmark
    def create(benchmark, **kwargs):
        spec = benchmarks.get_benchmark(benchmark)
        if spec.name in missing: raise FileNotFoundError(f"{spec.name}: no file here (test)")
        return real(spec, **kwargs)
    monkeypatch.setattr(benchmarks, 'create_dls_benchmark', create)


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
    if not _has_files(bench): pytest.skip(f"{bench}'s files are not under TSFAST_LITE_DATA")
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = cli.train_benchmark(bench, recipe, out=str(tmp_path/'run'), no_fallback=True, **_short(bench, recipe))
    _check_run(tmp_path/'run', bench, recipe, res)


FALLBACK = [(b, r) for b, r in CASES if not benchmarks.get_benchmark(b).simulated]


@pytest.mark.parametrize('bench,recipe', FALLBACK, ids=[f'{b}-{r}' for b, r in FALLBACK])
def test_offline_fallback(bench, recipe, tmp_path, monkeypatch, capsys):
    "The benchmark's files missing (no data folder, no network): the recipe trains on a simulated system (EMPS: the positioning system)"
    _files_missing(monkeypatch, {bench})
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = cli.train_benchmark(bench, recipe, out=str(tmp_path/'run'), **_short(bench, recipe))
    used = cli.FALLBACKS[bench]
    assert f'training on the {benchmarks.get_benchmark(used).title} instead' in capsys.readouterr().err
    _check_run(tmp_path/'run', used, recipe, res)


def test_all_default_recipe(tmp_path, monkeypatch):
    "`tsfast-lite --benchmark all` without --recipe: the default recipe on every benchmark (files faked missing but two)"
    keep = ('cascaded_tanks', 'ced')
    _files_missing(monkeypatch, set(cli.FILE_BENCHMARKS) - set(keep))
    if not all(_has_files(b) for b in keep): pytest.skip("Cascaded Tanks' or CED's files are not under TSFAST_LITE_DATA")
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        table = cli.train_benchmark('all', out=str(tmp_path/'all'), **SHORT)
    assert sorted(set(table['benchmark'])) == sorted(keep)
    assert (tmp_path/'all'/'results.md').exists()
