# One image for every CityOps process (api, ingest, projections, feeds): the command to run
# is chosen by docker-compose.yml, e.g. `cityops serve`.

# Build stage: installs the distribution and its dependencies into a virtual environment,
# so that the runtime image gets neither pip's cache nor the build tools.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/cityops
WORKDIR /src
# pyproject.toml and README.md first: the package metadata needs both. Then every folder
# that pyproject.toml's package-dir maps a package onto (tests/unit/test_production_image.py
# installs exactly what is copied here, so a package missing below fails the tests).
COPY pyproject.toml README.md ./
COPY app ./app
COPY domain ./domain
COPY projections ./projections
COPY ingest ./ingest
COPY command-center ./command-center
COPY maps ./maps
COPY feeds ./feeds
RUN /opt/cityops/bin/pip install .


FROM python:3.11-slim

ENV PATH=/opt/cityops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CITYOPS_DATA_DIR=/var/lib/cityops

# The after-action reviews' PDF reports embed a CJK font, so that Chinese names render.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

# Runs as an unprivileged user; its only writable place is the data folder.
RUN useradd --system --uid 10001 --home-dir /var/lib/cityops --create-home cityops
COPY --from=build /opt/cityops /opt/cityops

USER cityops
WORKDIR /var/lib/cityops
EXPOSE 8000

ENTRYPOINT ["cityops"]
CMD ["serve"]
