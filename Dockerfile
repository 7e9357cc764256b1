# One image for every tidelake role: each compose service runs a `tidelake ...` command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md requirements.lock ./
COPY core ./core
COPY producers ./producers
COPY stream_apps ./stream_apps
COPY sinks ./sinks
COPY queries ./queries
COPY tidelake ./tidelake
COPY tools ./tools
COPY data ./data
# The same locked versions as `make install` (the lock is a constraints file for pip too).
RUN pip install --constraint requirements.lock .

# The lake is a bind mount (see docker-compose.yml) so the host can query it too.
ENV TIDELAKE_LAKE__ROOT=/lake
VOLUME ["/lake"]
ENTRYPOINT ["tidelake"]
CMD ["--help"]
