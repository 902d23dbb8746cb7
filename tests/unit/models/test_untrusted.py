"""Model folders: only the formats the pipeline writes are read; pickles are refused unread."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from cva_tasks.models.untrusted import UntrustedModelFile, file_format, refuse_unsafe_files


def test_every_format_the_pipeline_writes_passes(tmp_path):
    (tmp_path / "params.json").write_text(json.dumps({"a": 1}, indent=1))
    np.savez(tmp_path / "arrays.npz", x=np.arange(3))
    np.save(tmp_path / "x.npy", np.arange(3))
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    refuse_unsafe_files(tmp_path, "sentiment")  # no error
    assert file_format(tmp_path / "arrays.npz") == "zip"
    assert file_format(tmp_path / "x.npy") == "npy"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("model.json", pickle.dumps({"a": 1}, protocol=0)),  # text pickle named .json
        ("model.json", pickle.dumps({"a": 1}, protocol=2)),
        ("model.keras", pickle.dumps({"a": 1}, protocol=5)),
        # mtime fixed: the gzip header's time would make the test id differ between
        # pytest-xdist workers, which then refuse to run the suite.
        ("churn_model.skops", gzip.compress(pickle.dumps({"a": 1}), mtime=0)),  # joblib
        ("model.joblib", b""),  # by its name alone
    ],
    ids=["text-pickle-as-json", "pickle2-as-json", "pickle5-as-keras", "gzip-as-skops", "joblib"],
)
def test_a_pickle_is_refused_by_its_bytes_or_name(tmp_path, name, content):
    (tmp_path / "params.json").write_text("{}")
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UntrustedModelFile, match=r"is a pickle \(joblib\) file") as refused:
        refuse_unsafe_files(tmp_path, "clv")
    assert str(tmp_path / name) in str(refused.value)
    assert "train_clv" in str(refused.value)


def test_an_unknown_format_is_refused_and_hidden_leftovers_are_not_read(tmp_path):
    (tmp_path / "params.json").write_text("{}")
    hidden = tmp_path / ".v.old-abc"
    hidden.mkdir()
    (hidden / "old.joblib").write_bytes(pickle.dumps(1))
    refuse_unsafe_files(tmp_path, "clusters")  # hidden leftovers are never loaded
    (tmp_path / "weights.bin").write_bytes(io.BytesIO(b"\x00\x01binary").getvalue())
    with pytest.raises(UntrustedModelFile, match="in no format the pipeline writes"):
        refuse_unsafe_files(tmp_path, "clusters")


def test_a_churn_file_naming_an_untrusted_type_is_refused_unread(tmp_path):
    import skops.io
    from sklearn.linear_model import LogisticRegression

    from cva_tasks.models.churn.model import ChurnModel

    # A skops file (no pickle) that would hand the loader a shell: a function outside
    # the trusted list.
    skops.io.dump(
        {"estimator": LogisticRegression(), "calibrator": os.system},
        tmp_path / ChurnModel.ARTIFACT,
    )
    (tmp_path / ChurnModel.METADATA).write_text(
        json.dumps({"family": "logistic_regression", "params": {}, "feature_names": []})
    )
    with pytest.raises(UntrustedModelFile, match=r"posix\.system") as refused:
        ChurnModel.load(tmp_path)
    assert str(tmp_path / ChurnModel.ARTIFACT) in str(refused.value)
