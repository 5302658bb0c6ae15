"""Thread policies (runtime.threads): presets, overrides, what reaches onnxruntime's SessionOptions,
and clear refusals of bad values in the library, both CLIs and the server's settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import runtime
from core.errors import ConfigError
from runtime import evaluate, generate, threads
from runtime.server.repository import Repository
from runtime.server.settings import Settings
from runtime.threads import PRESETS, SPIN_ENV_VAR, ThreadPolicy

from tests.runtime.test_model_kinds import SIZE, build_flat

pytestmark = pytest.mark.serving

SPIN_KEY = "session.intra_op.allow_spinning"


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory) -> Path:
    return build_flat(tmp_path_factory.mktemp("threads") / "gauss", None, gaussian_encoder=True)


@pytest.fixture(autouse=True)
def _no_spin_env(monkeypatch):
    monkeypatch.delenv(SPIN_ENV_VAR, raising=False)


def ort_settings(part) -> tuple[int, int, str | None]:
    options = part.session.get_session_options()
    try:
        spin = options.get_session_config_entry(SPIN_KEY)
    except Exception:  # noqa: BLE001 - ORT raises when the entry was never set
        spin = None
    return options.intra_op_num_threads, options.inter_op_num_threads, spin


def test_presets_and_overrides():
    assert threads.resolve() == PRESETS["dedicated"]
    assert threads.resolve(preset="server") == PRESETS["server"] == ThreadPolicy("server", 0, 1, False)
    assert PRESETS["dedicated"] == ThreadPolicy("dedicated", 0, 1, True)
    assert threads.resolve("efficient") == ThreadPolicy("efficient", 1, 1, False)
    assert threads.resolve("SERVER ") == PRESETS["server"]
    assert threads.resolve(3).intra_op == 3 and threads.resolve(3).spin == PRESETS["dedicated"].spin
    assert threads.resolve("2", preset="server") == ThreadPolicy("server, 2 intra-op", 2, 1, False)
    assert threads.resolve(1, spin="on") == ThreadPolicy("dedicated, 1 intra-op", 1, 1, True)
    assert threads.resolve("server", spin="on").spin is True
    assert threads.resolve(spin=False).spin is False
    own = ThreadPolicy("mine", 4, 2, None)
    assert threads.resolve(own) is own


def test_spin_env_applies_only_where_no_spin_is_given(monkeypatch):
    monkeypatch.setenv(SPIN_ENV_VAR, "0")
    assert threads.resolve().spin is False and threads.resolve(spin="on").spin is True
    monkeypatch.setenv(SPIN_ENV_VAR, "1")
    assert threads.resolve("server").spin is True
    explicit = threads.ThreadPolicy("mine", intra_op=1, inter_op=1, spin=False)
    assert threads.resolve(explicit).spin is False  # a policy object says its own spinning
    monkeypatch.setenv(SPIN_ENV_VAR, "yes")
    with pytest.raises(ConfigError, match=r"\$AGE_RUNTIME_SPIN='yes': expected 0 or 1"):
        threads.resolve()


@pytest.mark.parametrize("value", ["fast", "-1", -1, 1025, True, 2.5, "", [2]])
def test_bad_thread_values_are_refused(value):
    with pytest.raises(ConfigError, match="threads must be"):
        threads.resolve(value)


@pytest.mark.parametrize("value", ["maybe", 2, "", 0.5])
def test_bad_spin_values_are_refused(value):
    with pytest.raises(ConfigError, match="spin must be on or off"):
        threads.resolve(spin=value)


def test_a_policy_checks_its_own_fields():
    with pytest.raises(ConfigError, match="intra_op must be an integer"):
        ThreadPolicy("x", intra_op=-2)
    with pytest.raises(ConfigError, match="inter_op must be an integer"):
        ThreadPolicy("x", inter_op=True)
    with pytest.raises(ConfigError, match="spin must be"):
        ThreadPolicy("x", spin="on")  # type: ignore[arg-type]


def test_the_policy_reaches_the_session_options_of_every_part(vae_dir):
    session = runtime.load(vae_dir, providers="cpu", threads=3, spin=False)
    assert session.threads == ThreadPolicy("dedicated, 3 intra-op", 3, 1, False)
    generator, encoder = session.parts
    assert ort_settings(generator) == (3, 1, "0")
    session.encode_latents(np.zeros((1, 3, SIZE, SIZE), np.float32))  # the encoder opens now, with the same policy
    assert ort_settings(encoder) == (3, 1, "0")
    server = runtime.load(vae_dir, providers="cpu", threads="server")
    assert ort_settings(server.parts[0]) == (0, 1, "0")
    efficient = runtime.load(vae_dir, providers="cpu", threads="efficient")
    assert ort_settings(efficient.parts[0]) == (1, 1, "0")
    default = runtime.load(vae_dir, providers="cpu")
    assert default.threads == PRESETS["dedicated"]
    assert ort_settings(default.parts[0]) == (0, 1, "1" if PRESETS["dedicated"].spin else "0")
    np.testing.assert_array_equal(server.generate(2, seed=1), default.generate(2, seed=1))


def test_library_refuses_bad_values_before_reading_the_model(tmp_path):
    with pytest.raises(ConfigError, match="threads must be"):
        runtime.load(tmp_path / "missing", threads="many")
    with pytest.raises(ConfigError, match="spin must be on or off"):
        runtime.load(tmp_path / "missing", spin="sometimes")


def test_generate_cli_flags(vae_dir, tmp_path, caplog):
    out = tmp_path / "grid.png"
    assert generate.main([str(vae_dir), "--out", str(out), "--n", "2", "--threads", "1", "--spin", "off",
                          "--provider", "cpu"]) == 0
    assert out.is_file()
    assert generate.main([str(vae_dir), "--out", str(out), "--threads", "lots"]) == 2
    assert "--threads must be dedicated, server, efficient or a number" in caplog.text
    with pytest.raises(SystemExit):
        generate.main([str(vae_dir), "--out", str(out), "--spin", "maybe"])


def test_evaluate_cli_refuses_bad_threads(vae_dir, capsys):
    assert evaluate.main([str(vae_dir), "--n", "4", "--threads", "-3"]) == 2
    assert "--threads must be dedicated, server, efficient or a number" in capsys.readouterr().err


def test_server_settings_default_to_the_server_preset(vae_dir):
    assert Settings().thread_policy == PRESETS["server"]
    assert Settings(threads="dedicated", spin="off").thread_policy == ThreadPolicy("dedicated", 0, 1, False)
    with pytest.raises(ConfigError, match="--threads must be"):
        Settings(threads="x")
    with pytest.raises(ConfigError, match="--spin must be on or off"):
        Settings(spin="x")
    repo = Repository.scan(vae_dir.parent, providers="cpu")
    entry = repo.models["gauss"]
    assert entry.session.threads == PRESETS["server"] and ort_settings(entry.session.parts[0]) == (0, 1, "0")
    tuned = Repository.scan(vae_dir.parent, providers="cpu", threads=1, spin="on").models["gauss"].session
    assert ort_settings(tuned.parts[0]) == (1, 1, "1")
