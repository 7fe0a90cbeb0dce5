# The carprice price-estimate service: gunicorn + Flask, one verified model bundle baked in.
#
#   docker build --build-arg BUNDLE=data/model/package/bundle -t carprice:latest .
#   docker run -p 127.0.0.1:8000:8000 carprice:latest
#
# BASE_IMAGE is any Debian-like image; the build installs Debian's python3 when the base has
# none (a bare Debian base made with debootstrap, see scripts/container-setup.sh). The build stage
# alone gets a C compiler and the Python headers: it compiles the tree scorer extension
# (carprice.runtime._treescore); the service image has no compiler.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# PIP_CERT: a CA bundle mounted at build time where HTTPS is re-signed; it never enters the image.
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && if ! command -v python3 >/dev/null; then \
         apt-get install -y --no-install-recommends python3 python3-venv; \
       fi \
    && if ! python3 -c 'import os, sys, sysconfig; \
           sys.exit(not os.path.isfile(os.path.join(sysconfig.get_path("include"), "Python.h")))'; \
       then apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/tools \
    && python3 -m venv --without-pip /opt/venv
# The serving requirements only (no pandas, pandera, scikit-learn or mlflow), into a venv without
# pip; test suites shipped inside wheels are dropped. An empty PIP_CERT would make pip look for a
# CA file named "": it is unset then.
COPY serving/requirements.txt /tmp/requirements.txt
RUN [ -n "${PIP_CERT:-}" ] || unset PIP_CERT; \
    /opt/tools/bin/pip --python /opt/venv/bin/python install -r /tmp/requirements.txt \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +
# carprice itself without dependencies, apart from the venv: a code change rebuilds this layer only.
# Installing it compiles the tree scorer extension; the build fails if the extension is missing.
COPY pyproject.toml setup.py README.md /tmp/carprice/
COPY src /tmp/carprice/src
RUN [ -n "${PIP_CERT:-}" ] || unset PIP_CERT; \
    /opt/tools/bin/pip install --no-deps --target /opt/carprice /tmp/carprice \
    && PYTHONPATH=/opt/carprice /opt/venv/bin/python -c 'import carprice.runtime._treescore'

FROM ${BASE_IMAGE}
# libgomp1: LightGBM's OpenMP runtime. python3 only when the base image has none.
RUN apt-get update \
    && if command -v python3 >/dev/null; then extra=; else extra=python3; fi \
    && apt-get install -y --no-install-recommends libgomp1 $extra \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && useradd --uid 10001 --user-group --no-log-init --shell /usr/sbin/nologin \
       --home-dir /var/lib/carprice --create-home carprice
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/carprice /opt/carprice
WORKDIR /srv/carprice
COPY serving/*.py serving/requirements.txt serving/
ARG BUNDLE=data/model/package/bundle
COPY ${BUNDLE} /srv/carprice/bundle
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/carprice \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    CARPRICE_HOME=/var/lib/carprice \
    CARPRICE_BUNDLE=/srv/carprice/bundle \
    CARPRICE_BIND=0.0.0.0:8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; port = os.environ.get('CARPRICE_BIND', ':8000').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "serving/gunicorn.conf.py", "serving.app:create_app()"]
