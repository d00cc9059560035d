"""The benchmarks' splits, initialisation windows and scoring against the official loader, nonlinear_benchmarks 1.0.1
(`pip install nonlinear-benchmarks`, in the dev extra): its `Silverbox()`, `WienerHammerBenchMark()`,
`Cascaded_Tanks()`, `EMPS()` and `CED()`, and the "not splitted" `BoucWen()` and `WienerHammerstein_Process_Noise()`,
read the same files offline, laid out where it looks for them, and every array, every
`state_initialization_window_length` and its RMSE must equal tsfast_lite's.

Needs the benchmark files (TSFAST_LITE_DATA or the cache); without them the tests skip with one line saying so."""
import io, contextlib
import numpy as np
import pytest
import scipy.io
from tsfast_lite.data import benchmarks as B

nlb = pytest.importorskip('nonlinear_benchmarks', reason="nonlinear_benchmarks is not installed (pip install -e '.[dev]')")
from nonlinear_benchmarks.error_metrics import RMSE

def _file(benchmark, file=None):
    try: return B.benchmark_file(benchmark, download=False, file=file)
    except FileNotFoundError as e: pytest.skip(str(e).split('.\n')[0])  # which file, where it was looked for

def _official(loader, tmp_path):
    "Run an official loader on the files laid out in tmp_path (its download step only checks that the archive exists)"
    with contextlib.redirect_stdout(io.StringIO()): return loader(dir_placement=str(tmp_path))

def _same(ours, theirs, what):
    np.testing.assert_array_equal(ours.get(['u'])[:, 0], theirs.u, err_msg=f"{what}: u")
    np.testing.assert_array_equal(ours.get(['y'])[:, 0], theirs.y, err_msg=f"{what}: y")

def _train_val(ds):
    "Our train and validation records joined again: the official train_val"
    from tsfast_lite.data.records import Record
    recs = ds['train'] + ds['valid']
    return Record({k: np.concatenate([r.get([k])[:, 0] for r in recs]) for k in ('u', 'y')}, fs=recs[0].fs)

def test_silverbox_matches_the_official_loader(tmp_path):
    mat = _file('silverbox')
    d = tmp_path/'Silverbox'/'SilverboxFiles'; d.mkdir(parents=True)
    (tmp_path/'Silverbox'/'SilverboxFiles.zip').write_bytes(b'')  # the "downloaded" archive it checks for
    for f in ('SNLS80mV.mat', 'Schroeder80mV.mat'): (d/f).symlink_to(mat.parent/f)
    train_val, tests = _official(nlb.Silverbox, tmp_path)
    ours = B.silverbox_dataset()
    _same(_train_val(ours), train_val, 'silverbox train_val')
    assert len(ours['test']) == len(tests) == 3
    for r, t in zip(ours['test'], tests):
        _same(r, t, f'silverbox {r.name}')
        assert t.state_initialization_window_length == B.SILVERBOX_N_INIT == 50
    assert [r.name for r in ours['test']] == ['multisine', 'arrow_full', 'arrow_no_extrapolation']
    assert abs(1 / train_val.sampling_time - B.SILVERBOX_FS) < 1e-9

def test_wiener_hammerstein_matches_the_official_loader(tmp_path):
    csv = _file('wiener_hammerstein')
    s = B.read_signals(csv, ['uBenchMark', 'yBenchMark'])
    d = tmp_path/'WienerHammerBenchMark'; d.mkdir()
    scipy.io.savemat(d/'WienerHammerBenchMark.mat', dict(uBenchMark=s['uBenchMark'][:, None],
                                                        yBenchMark=s['yBenchMark'][:, None], fs=np.array([[B.WH_FS]])))
    train, test = _official(nlb.WienerHammerBenchMark, tmp_path)
    ours = B.wiener_hammerstein_dataset()
    _same(_train_val(ours), train, 'wiener_hammerstein train')
    _same(ours['test'][0], test, 'wiener_hammerstein test')
    assert test.state_initialization_window_length == B.WH_N_INIT == 50

def test_cascaded_tanks_matches_the_official_loader(tmp_path):
    f = _file('cascaded_tanks')
    d = tmp_path/'Cascaded_Tanks'/'CascadedTanksFiles'; d.mkdir(parents=True)
    (tmp_path/'Cascaded_Tanks'/'CascadedTanksFiles.zip').write_bytes(b'')
    mat = f if f.suffix == '.mat' else f.with_name('dataBenchmark.mat')
    if not mat.exists(): pytest.skip(f"the official loader reads dataBenchmark.mat, not beside {f}")
    (d/'dataBenchmark.mat').symlink_to(mat)
    train_val, test = _official(nlb.Cascaded_Tanks, tmp_path)
    ours = B.cascaded_tanks_dataset()
    _same(_train_val(ours), train_val, 'cascaded_tanks train_val')
    _same(ours['test'][0], test, 'cascaded_tanks test')
    assert test.state_initialization_window_length == B.CT_N_INIT == 50
    assert abs(train_val.sampling_time - 1 / B.CT_FS) < 1e-9

def _archive(tmp_path, folder, zip_name, files, sub=()):
    "Lay `files` out as the official loader expects after its download of `zip_name` into `folder`"
    d = tmp_path/folder; d.mkdir()
    (d/zip_name).write_bytes(b'')  # the "downloaded" archive it checks for
    for s in sub: d = d/s
    d.mkdir(parents=True, exist_ok=True)
    for f in files: (d/f.name).symlink_to(f)

def test_emps_matches_the_official_loader(tmp_path):
    files = [_file('emps'), _file('emps', 'DATA_EMPS_PULSES.mat')]
    _archive(tmp_path, 'EMPS', 'EMPS.zip', files)
    train_val, test = _official(nlb.EMPS, tmp_path)
    ours = B.emps_dataset()
    _same(_train_val(ours), train_val, 'emps train_val')
    _same(ours['test'][0], test, 'emps test')
    assert test.state_initialization_window_length == B.EMPS_N_INIT == 20
    assert abs(1 / train_val.sampling_time - B.EMPS_FS) < 0.03 and abs(1 / test.sampling_time - B.EMPS_FS) < 0.03

def test_ced_matches_the_official_loader(tmp_path):
    f = _file('ced')
    if f.suffix.lower() != '.mat': pytest.skip(f"the official loader reads DATAUNIF.MAT, not {f.name}")
    _archive(tmp_path, 'CED', 'FULLTEXT01.zip', [f])
    train_val, tests = _official(nlb.CED, tmp_path)
    ours = B.ced_dataset()
    for j, amp in enumerate(('low', 'high')):
        from tsfast_lite.data.records import Record
        tv = [r for r in ours['train'] + ours['valid'] if r.name.endswith(amp)]
        joined = Record({k: np.concatenate([r.get([k])[:, 0] for r in tv]) for k in 'uy'})
        _same(joined, train_val[j], f'ced train_val {amp}')
        _same(ours['test'][j], tests[j], f'ced test {amp}')
        assert tests[j].state_initialization_window_length == B.CED_N_INIT == 10
        assert abs(train_val[j].sampling_time - 1 / B.CED_FS) < 1e-12
    assert [r.name for r in ours['test']] == ['low_amplitude', 'high_amplitude']

def test_bouc_wen_tests_match_the_official_loader(tmp_path):
    files = [_file('bouc_wen', f'{k}val_{n}.mat') for n in ('multisine', 'sinesweep') for k in 'uy']
    _file('bouc_wen', 'train.h5')
    _archive(tmp_path, 'BoucWen', 'Hysteretic Benchmark with a Dynamic Nonlinearity_1_all.zip', files,
             ('BoucWenFiles', 'Test signals', 'Validation signals'))
    tests = _official(nlb.not_splitted_benchmarks.BoucWen, tmp_path)
    ours = B.bouc_wen_dataset()
    assert len(tests) == len(ours['test']) == 2
    for r, t in zip(ours['test'], tests): _same(r, t, f'bouc_wen {r.name}')
    assert tests[0].state_initialization_window_length is None  # no n_init defined: ours (50) is a choice

def test_wh_process_noise_matches_the_official_loader(tmp_path):
    files = [_file('wh_process_noise'), _file('wh_process_noise', 'WH_TestDataset.mat')]
    _archive(tmp_path, 'WienHammer', 'WienerHammersteinFiles.zip', files, ('WienerHammersteinFiles',))
    train, test = _official(nlb.not_splitted_benchmarks.WienerHammerstein_Process_Noise, tmp_path)
    ours = B.wh_process_noise_dataset()
    assert (len(train), len(test)) == (len(ours['train']) + len(ours['valid']), len(ours['test'])) == (10, 2)
    for r, t in zip(ours['train'] + ours['valid'], train): _same(r, t, f'wh_process_noise {r.name}')
    for r, t in zip(ours['test'], test): _same(r, t, f'wh_process_noise {r.name}')
    assert abs(1 / train[0].sampling_time - B.WHPN_FS) < 1e-6 and test[0].state_initialization_window_length is None

def test_scoring_matches_the_official_rmse():
    "evaluate_tests' RMSE is the official RMSE(y_true, y_model) with n_init from the test set (here on Duffing, no file)"
    import tsfast_lite.inference  # noqa: F401
    from tsfast_lite.learner.core import RNNLearner
    from nonlinear_benchmarks.utilities import Input_output_data
    dls = B.create_dls_duffing(n_train=4000, n_valid=1000, n_test=2000, win_sz=200, bs=4)
    learn = RNNLearner(dls, hidden_size=8)
    res = learn.evaluate_tests(plot=False)
    for name, (u, y) in dls.test_sets.items():
        p = learn.predict_sequence(u)
        official = RMSE(Input_output_data(u=u[:, 0], y=y[:, 0], state_initialization_window_length=dls.n_init), p[:, 0])
        np.testing.assert_allclose(res.loc[name, 'rmse [mV]'], official * 1000, rtol=1e-6)

TESTED = {'silverbox': test_silverbox_matches_the_official_loader, 'wiener_hammerstein': test_wiener_hammerstein_matches_the_official_loader,
          'cascaded_tanks': test_cascaded_tanks_matches_the_official_loader, 'emps': test_emps_matches_the_official_loader,
          'ced': test_ced_matches_the_official_loader, 'bouc_wen': test_bouc_wen_tests_match_the_official_loader,
          'wh_process_noise': test_wh_process_noise_matches_the_official_loader}
WITH_LOADER = [b for b in B.BENCHMARK_SPECS.values() if b.official_loader]

@pytest.mark.parametrize('spec', WITH_LOADER, ids=[b.name for b in WITH_LOADER])
def test_every_spec_with_an_official_loader_is_compared_with_it(spec):
    "Each benchmark spec naming an official loader has a test above comparing its split with that loader's"
    import functools
    try: loader = functools.reduce(getattr, spec.official_loader.split('.'), nlb)
    except AttributeError:
        pytest.skip(f"nonlinear_benchmarks {nlb.__version__ if hasattr(nlb, '__version__') else '1.0.1'} has no "
                    f"{spec.official_loader} (the {spec.title} loader is on its GitHub master only); its arrays and split "
                    "are checked in the Benchmarks data chapter")
    assert callable(loader)
    assert spec.name in TESTED, f"{spec.name}: no test compares its split with nonlinear_benchmarks.{spec.official_loader}"

def test_stacked_test_sets_score_as_the_official_template():
    "A test set of several records (the Fine Steering Mirror's periods) scores as the official template: "
    "1e6 * RMSE(test.y, prediction, n_init) over time, averaged over realizations and periods, per output"
    import tsfast_lite.inference  # noqa: F401
    from tsfast_lite.data.records import Record
    from tsfast_lite.data.loaders import create_dls
    from tsfast_lite.learner.core import RNNLearner
    rng = np.random.default_rng(0)
    def rec(n, name):
        u = rng.normal(size=(n, 2)); y = np.stack([np.convolve(u[:, 0], [0.5, 0.3], 'same'), u[:, 1] ** 2 + 0.1 * u[:, 0]], 1) * 1e-6
        return Record({'u1': u[:, 0], 'u2': u[:, 1], 'y1': y[:, 0], 'y2': y[:, 1]}, name=name)
    dls = create_dls(['u1', 'u2'], ['y1', 'y2'], {'train': [rec(3000, 'tr')], 'valid': [rec(600, 'va')], 'test': []},
                     win_sz=200, bs=4, n_init=30, device='cpu')
    dls.score_unit, dls.score_scale = 'µm', 1e6
    learn = RNNLearner(dls, hidden_size=8)
    T, R, P = 500, 3, 2
    recs = [rec(T, f'r{r}p{p}') for r in range(R) for p in range(P)]
    u = np.stack([x.get(['u1', 'u2']) for x in recs]); y = np.stack([x.get(['y1', 'y2']) for x in recs])
    res = learn.evaluate_tests({'level': (u, y)}, plot=False)
    pred = np.stack([learn.predict_sequence(ui) for ui in u])                      # [R*P, T, n_y]
    y4, p4 = (a.reshape(R, P, T, 2).transpose(2, 3, 0, 1) for a in (y, pred))     # the official layout (N, n_y, R, P)
    official = np.mean(1e6 * RMSE(y4, p4, n_init=30), axis=(1, 2))
    np.testing.assert_allclose(res['rmse [µm]'].to_numpy(), official, rtol=1e-9)
    assert list(res.index) == [('level', 'y1'), ('level', 'y2')] and set(res['n_records']) == {6}
