"""Kafka's broker jars: found in the user cache, or fetched once from Maven Central with `mvn`.

The pom `tidelake/resources/kafka-pom.xml` (package data: a pip-installed tidelake has it too) names
the artifacts; Maven resolves them into `~/.m2` and copies them into `<cache>/kafka-<version>/libs`,
which is the broker's classpath. Maven runs on a copy of the pom in a temporary folder, so its
`target/` never lands inside the installed package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path

from core.errors import BrokerStartError, BrokerToolMissing
from core.settings import BrokerSettings, default_cache_home

#: The pom that names Kafka's jars, shipped in the package (`tidelake/resources/`).
POM_RESOURCE = "kafka-pom.xml"
MIN_JAVA = 17
MAVEN_TIMEOUT_S = 600


def java_major_version(java: str = "java") -> int:
    """The major version of `java` on PATH; BrokerToolMissing when there is none."""
    exe = shutil.which(java)
    if exe is None:
        msg = f"Java {MIN_JAVA}+ is needed to run the local Kafka broker and `java` is not on PATH; install a JDK (e.g. apt-get install openjdk-17-jre-headless) or point TIDELAKE_KAFKA__BOOTSTRAP_SERVERS at a running Kafka"
        raise BrokerToolMissing(msg)
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        msg = f"could not read the Java version from `{exe} -version`: {out.stderr.strip()[:200]}"
        raise BrokerToolMissing(msg)
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" means Java 8


def check_java() -> None:
    major = java_major_version()
    if major < MIN_JAVA:
        msg = f"Kafka 4 needs Java {MIN_JAVA}+, found Java {major}; install a newer JDK or set JAVA_HOME/PATH"
        raise BrokerToolMissing(msg)


def jars_dir(settings: BrokerSettings) -> Path:
    """The folder of jars for the configured Kafka version (not necessarily fetched yet)."""
    if settings.jars_dir is not None:
        return settings.jars_dir
    return default_cache_home() / f"kafka-{settings.kafka_version}" / "libs"


def _has_broker_jar(folder: Path, version: str) -> bool:
    return (folder / f"kafka_2.13-{version}.jar").is_file() and (
        folder / f"kafka-server-{version}.jar"
    ).is_file()


def ensure_jars(settings: BrokerSettings, *, quiet: bool = True) -> Path:
    """Return the jar folder, fetching Kafka from Maven Central first if it is not there yet."""
    folder = jars_dir(settings)
    if _has_broker_jar(folder, settings.kafka_version):
        return folder
    if settings.jars_dir is not None:
        msg = f"no Kafka {settings.kafka_version} jars in {folder} (TIDELAKE_BROKER__JARS_DIR); unset it to let tidelake fetch them"
        raise BrokerStartError(msg)
    mvn = shutil.which("mvn")
    if mvn is None:
        msg = "Maven (`mvn`, 3.6+) is needed once to fetch Kafka's jars from Maven Central and is not on PATH; install it (e.g. apt-get install maven) or use Docker (docker compose up)"
        raise BrokerToolMissing(msg)
    partial = partial_folder(folder)
    with shipped_pom(POM_RESOURCE) as pom:
        properties = {"kafka.version": settings.kafka_version, "kafka.libs.dir": str(partial)}
        command = maven_package_command(mvn, pom, properties, quiet=quiet)
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"Maven did not finish fetching Kafka {settings.kafka_version} within {MAVEN_TIMEOUT_S} s; check access to Maven Central and run `make install` again"
            raise BrokerStartError(msg) from exc
    if done.returncode != 0 or not _has_broker_jar(partial, settings.kafka_version):
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        msg = f"Maven could not fetch Kafka {settings.kafka_version}'s jars (exit {done.returncode}): {' '.join(command)}\n{tail}"
        raise BrokerStartError(msg)
    replace_folder(partial, folder)
    return folder


@contextmanager
def shipped_pom(resource: str) -> Iterator[Path]:
    """A temporary copy of the pom `tidelake/resources/<resource>`: Maven writes its `target/`
    beside the pom, never inside the installed package."""
    with (
        tempfile.TemporaryDirectory(prefix="tidelake-pom-") as work,
        as_file(files("tidelake") / "resources" / resource) as shipped,
    ):
        pom = Path(work) / "pom.xml"
        shutil.copyfile(shipped, pom)
        yield pom


def maven_package_command(
    mvn: str, pom: Path, properties: dict[str, str], *, quiet: bool = True
) -> list[str]:
    """`mvn package` of `pom` with `-Dname=value` for each property (the pom copies jars; nothing compiles)."""
    return [
        mvn,
        "-B",
        *(["-q"] if quiet else []),
        "-f",
        str(pom),
        "package",
        *(f"-D{k}={v}" for k, v in properties.items()),
    ]


def partial_folder(folder: Path) -> Path:
    """Where a fetch into `folder` writes first (emptied now); `replace_folder` puts it in place."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def replace_folder(partial: Path, folder: Path) -> None:
    """Put a completely fetched `partial` in place of `folder`: all or nothing, so a half-fetched
    folder is never taken for a good one."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(folder)
