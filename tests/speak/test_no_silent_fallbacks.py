"""Motion inference refuses what it used to paper over: an unknown speaking style (was the
any-speaker row), an Audio2Param run without its template (was zeros), and motion/frame
counts more than one frame apart (were trimmed or padded to fit)."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.pipeline.motion import (ANY_STYLE, audio2param_template, fit_chunks, fit_length,
                                             style_row)

RUN = SimpleNamespace(path=Path("runs/a2p"), identities=["id000", "id001"],
                      templates=np.arange(9, dtype=np.float32).reshape(3, 3))


def test_styles_resolve_to_rows_and_an_unknown_one_is_refused():
    assert style_row(RUN, ANY_STYLE) == 0
    assert style_row(RUN, "id001") == 2
    with pytest.raises(ConfigError, match=r"'identity_000' is not an identity .*--style any"):
        style_row(RUN, "identity_000")


def test_audio2param_template_must_exist():
    np.testing.assert_array_equal(audio2param_template(RUN, 2), [6, 7, 8])
    with pytest.raises(ModelFileError, match="no identity template for style row 0"):
        audio2param_template(SimpleNamespace(path=RUN.path, templates=None), 0)
    with pytest.raises(ModelFileError, match="style row 3"):
        audio2param_template(RUN, 3)


def test_lengths_one_frame_apart_are_fitted_and_larger_gaps_refused():
    motion = np.arange(10, dtype=np.float32)[:, None]
    assert fit_length(motion, 11).shape == (11, 1) and fit_length(motion, 9).shape == (9, 1)
    np.testing.assert_array_equal(fit_length(motion, 11)[-1], motion[-1])
    for n_frames in (8, 12):
        with pytest.raises(ValueError, match="more than 1 apart"):
            fit_length(motion, n_frames)
    chunks = list(fit_chunks(iter([motion[:6], motion[6:]]), 11))
    assert sum(c.shape[0] for c in chunks) == 11
