"""Kafka's jars are fetched with Maven from the pom shipped inside the package, so a pip-installed
tidelake (without the source checkout's tools/) can fetch them too. Maven runs on a copy of the pom
in a temporary folder: nothing is written into the installed package."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from core.settings import KAFKA_VERSION, BrokerSettings
from tidelake.kafka_jars import POM_RESOURCE, ensure_jars, jars_dir


def test_jars_are_fetched_from_the_shipped_pom_into_an_empty_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TIDELAKE_BROKER__JARS_DIR", raising=False)
    resources = files("tidelake") / "resources"
    before = sorted(entry.name for entry in resources.iterdir())
    settings = BrokerSettings()

    folder = ensure_jars(settings)

    assert folder == tmp_path / "cache" / "tidelake" / f"kafka-{KAFKA_VERSION}" / "libs" == jars_dir(settings)
    assert (folder / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    assert (folder / f"kafka-server-{KAFKA_VERSION}.jar").is_file()
    assert not folder.with_name("libs.partial").exists()  # renamed whole, never left half-fetched
    assert POM_RESOURCE in before
    assert sorted(entry.name for entry in resources.iterdir()) == before  # no target/ in the package
    assert ensure_jars(settings) == folder  # the second call finds them
