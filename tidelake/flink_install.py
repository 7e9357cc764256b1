"""Apache Flink for `tidelake stream run --runtime flink`: PyFlink in a venv of its own, and Flink's
Kafka SQL connector jar, found where `tidelake flink fetch` put them or installed once.

- PyFlink (`apache-flink`, PyPI) goes into `<XDG_DATA_HOME>/tidelake/flink/venv`, never into
  tidelake's own venv: its dependencies pin pyarrow<21, pandas<2.3 and apache-beam<=2.61, which
  conflict with tidelake's (pyarrow 25, pandas 3). The venv runs one script,
  stream_apps/flink_job.py, which imports only the standard library and PyFlink.
- The connector (`org.apache.flink:flink-sql-connector-kafka`, Maven Central) is fetched by Maven
  from the pom `tidelake/resources/flink-pom.xml` (package data), on a copy of it in a temporary
  folder, into `<XDG_CACHE_HOME>/tidelake/flink-<version>/lib`, beside Kafka's jars
  (tidelake/kafka_jars.py does the same for the broker).

Pins, together: PyFlink 2.2.0 with connector 5.0.0-2.2. Flink's connectors are released apart from
Flink, one build per Flink minor line, and 2.2 is the newest line the Kafka connector is built for;
the PyFlink venv must run the same Flink line (its jars are Flink's runtime in local mode).

Both steps are all-or-nothing (built under a `.partial` name, then renamed) and skipped when done.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

from core.errors import ConfigError, TidelakeError
from core.settings import default_cache_home, default_data_home
from tidelake.kafka_jars import (
    check_java,
    maven_package_command,
    partial_folder,
    replace_folder,
    shipped_pom,
)

#: The PyFlink release, pinned with the connector (module docstring).
FLINK_VERSION = "2.2.0"
#: The Kafka SQL connector built for Flink 2.2 (Maven Central).
KAFKA_CONNECTOR_VERSION = "5.0.0-2.2"
#: zstd-jni, beside the connector: its shaded Kafka client needs it to read zstd batches (the pom says why).
ZSTD_JNI_VERSION = "1.5.6-10"
POM_RESOURCE = "flink-pom.xml"
#: Every package of the Flink venv at its exact version (`make lock` refreshes it from
#: resources/flink-requirements.in), so every fresh install gets the versions the suite ran with.
LOCK_RESOURCE = "flink-requirements.lock"
#: Written last into the venv: which pin it holds (a venv without it is incomplete).
MARKER = ".tidelake-flink"
PIP_TIMEOUT_S = 1800
MAVEN_TIMEOUT_S = 600


class FlinkInstallError(TidelakeError):
    """PyFlink or the connector could not be installed (a registry unreachable, a tool failing)."""


@dataclass(frozen=True)
class FlinkInstall:
    """Where the Flink runtime lives: the venv's python, the connector jar and, beside it, zstd-jni."""

    venv: Path
    connector_jar: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def jars(self) -> tuple[Path, Path]:
        """The connector and zstd-jni, in the one folder the runtime gives Flink ('pipeline.jars')."""
        return self.connector_jar, self.connector_jar.parent / f"zstd-jni-{ZSTD_JNI_VERSION}.jar"


def default_install() -> FlinkInstall:
    """The folders `tidelake flink fetch` uses (XDG data and cache homes); not necessarily there."""
    lib = default_cache_home() / f"flink-{FLINK_VERSION}" / "lib"
    return FlinkInstall(
        default_data_home() / "flink" / "venv",
        lib / f"flink-sql-connector-kafka-{KAFKA_CONNECTOR_VERSION}.jar",
    )


def venv_stamp() -> str:
    """What a complete venv's marker holds: the pin and the lock's digest, so a new lock reinstalls."""
    lock = (files("tidelake") / "resources" / LOCK_RESOURCE).read_bytes()
    return f"apache-flink=={FLINK_VERSION} lock-sha256={hashlib.sha256(lock).hexdigest()[:16]}"


def _venv_ready(venv: Path) -> bool:
    marker = venv / MARKER
    return marker.is_file() and marker.read_text().strip() == venv_stamp()


def installed(install: FlinkInstall | None = None) -> FlinkInstall:
    """The install, checked; ConfigError naming the fix when a part is missing."""
    install = install or default_install()
    missing = []
    if not _venv_ready(install.venv):
        missing.append(f"PyFlink {FLINK_VERSION} (venv {install.venv})")
    absent = [jar for jar in install.jars if not jar.is_file()]
    if absent:
        missing.append(f"the Kafka connector ({', '.join(map(str, absent))})")
    if missing:
        msg = f"the Flink runtime is not installed: no {' and no '.join(missing)}; run `tidelake flink fetch` (or make install)"
        raise ConfigError(msg)
    return install


def _run(command: list[str], what: str, timeout_s: float, hint: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        msg = f"{what} did not finish within {timeout_s:.0f} s; {hint}"
        raise FlinkInstallError(msg) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        msg = f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{tail}\n{hint}"
        raise FlinkInstallError(msg)


def _installer(python: Path) -> list[str]:
    """uv (tidelake's venv has it: `make install`) when there is one, else the venv's own pip."""
    uv = Path(sys.executable).parent / "uv"
    found = str(uv) if uv.is_file() else shutil.which("uv")
    if found:
        return [found, "pip", "install", "--quiet", "--python", str(python)]
    return [str(python), "-m", "pip", "install", "--quiet"]


def ensure_venv(venv: Path, say: Callable[[str], None] = lambda _: None) -> Path:
    """The Flink venv, created and filled with `apache-flink==FLINK_VERSION` if not done yet."""
    if _venv_ready(venv):
        return venv
    partial = venv.with_name(venv.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    say(f"creating the Flink venv {venv} ...")
    _run([sys.executable, "-m", "venv", str(partial)], "python -m venv", 300, "check the Python install")
    pin = f"apache-flink=={FLINK_VERSION}"
    say(f"installing {pin} from PyPI at the locked versions (about 730 MB, a few minutes) ...")
    with as_file(files("tidelake") / "resources" / LOCK_RESOURCE) as lock:
        _run(
            [*_installer(partial / "bin" / "python"), pin, "--constraint", str(lock)],
            f"installing {pin}",
            PIP_TIMEOUT_S,
            "check access to PyPI (pip's index, or UV_INDEX_URL / PIP_INDEX_URL) and run `tidelake flink fetch` again",
        )
    (partial / MARKER).write_text(venv_stamp() + "\n")
    shutil.rmtree(venv, ignore_errors=True)
    partial.rename(venv)  # python -m venv paths are relative to bin/python: the renamed venv works
    return venv


def ensure_connector(jars: tuple[Path, ...], say: Callable[[str], None] = lambda _: None) -> Path:
    """The connector jar and the jars beside it (`FlinkInstall.jars`, one folder), fetched with
    Maven from Maven Central unless all are there; returns the connector's path."""
    jar = jars[0]
    if all(j.is_file() for j in jars):
        return jar
    check_java()
    mvn = shutil.which("mvn")
    if mvn is None:
        msg = "Maven (`mvn`, 3.6+) is needed once to fetch Flink's Kafka connector from Maven Central and is not on PATH; install it (e.g. apt-get install maven)"
        raise FlinkInstallError(msg)
    folder = jar.parent
    partial = partial_folder(folder)
    say(f"fetching flink-sql-connector-kafka {KAFKA_CONNECTOR_VERSION} from Maven Central ...")
    with shipped_pom(POM_RESOURCE) as pom:
        properties = {
            "flink.kafka.connector.version": KAFKA_CONNECTOR_VERSION,
            "zstd.jni.version": ZSTD_JNI_VERSION,
            "flink.libs.dir": str(partial),
        }
        command = maven_package_command(mvn, pom, properties)
        _run(
            command,
            "Maven",
            MAVEN_TIMEOUT_S,
            "check access to Maven Central and run `tidelake flink fetch` again",
        )
    absent = [partial / j.name for j in jars if not (partial / j.name).is_file()]
    if absent:
        msg = (
            f"Maven finished but {', '.join(map(str, absent))} is not there; run `tidelake flink fetch` again"
        )
        raise FlinkInstallError(msg)
    replace_folder(partial, folder)
    return jar


def ensure_flink(
    install: FlinkInstall | None = None, say: Callable[[str], None] = lambda _: None
) -> FlinkInstall:
    """Install what is missing of the Flink runtime; fast when everything is there."""
    install = install or default_install()
    ensure_venv(install.venv, say)
    ensure_connector(install.jars, say)
    return install
