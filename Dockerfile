# The carprice price-estimate service: gunicorn + Flask, one verified model bundle baked in.
#
#   docker build --build-arg BUNDLE=data/model/package/bundle -t carprice:latest .
#   docker run -p 127.0.0.1:8000:8000 carprice:latest
#
# BASE_IMAGE is any Debian-like image; the build installs Debian's python3 when the base has
# none (a bare Debian base made with debootstrap, see scripts/container-setup.sh). The build stage
# alone gets a C compiler and the Python headers: it compiles the tree scorer extension
# (carprice.runtime._treescore); the service image has no compiler.
#
# Pinned inputs. The base image by digest: a tag moves with every rebuild of the image, a digest
# names one image for good. The default is Docker's official python:3.11-slim-bookworm (Python
# 3.11.16 on Debian 12), by the digest of its multi-platform index as docker-library/repo-info
# records it (repos/python/remote/3.11-slim-bookworm.md, the build of 2026-08-25); it was not
# pulled on the machine that wrote this line. scripts/build-image.sh passes the local base by its
# own digest instead. The Python packages by version and hash (serving/requirements.lock, `make
# lock`), the Debian packages by version: those of Debian 12 (bookworm), the base's suite; a base
# of another suite needs its versions as build arguments. A pinned version that its mirror no
# longer has fails the build instead of installing another.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02

FROM ${BASE_IMAGE} AS build
# PIP_CERT: a CA bundle mounted at build time where HTTPS is re-signed; it never enters the image.
ARG PIP_CERT
ARG PYTHON3_VERSION=3.11.2-1+b1
ARG GCC_VERSION=4:12.2.0-3
ARG LIBC6_DEV_VERSION=2.36-9+deb12u14
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && if ! command -v python3 >/dev/null; then \
         apt-get install -y --no-install-recommends \
           python3=${PYTHON3_VERSION} python3-venv=${PYTHON3_VERSION}; \
       fi \
    && if ! python3 -c 'import os, sys, sysconfig; \
           sys.exit(not os.path.isfile(os.path.join(sysconfig.get_path("include"), "Python.h")))'; \
       then apt-get install -y --no-install-recommends python3-dev=${PYTHON3_VERSION}; \
       fi \
    && apt-get install -y --no-install-recommends gcc=${GCC_VERSION} libc6-dev=${LIBC6_DEV_VERSION} \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/tools \
    && python3 -m venv --without-pip /opt/venv
# The serving requirements only (no pandas, pandera, scikit-learn or mlflow), into a venv without
# pip: every package from the hashed lock, dependencies included, so pip installs nothing the lock
# does not name and refuses any file whose hash it does not list; `pip check` fails the build if
# the lock misses a dependency. Test suites shipped inside wheels are dropped. An empty PIP_CERT
# would make pip look for a CA file named "": it is unset then.
COPY serving/requirements.lock /tmp/requirements.lock
RUN [ -n "${PIP_CERT:-}" ] || unset PIP_CERT; \
    /opt/tools/bin/pip --python /opt/venv/bin/python install \
      --require-hashes --no-deps -r /tmp/requirements.lock \
    && /opt/tools/bin/pip --python /opt/venv/bin/python check \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +
# carprice itself without dependencies, apart from the venv: a code change rebuilds this layer only.
# Installing it compiles the tree scorer extension; the build fails if the extension is missing.
COPY pyproject.toml setup.py README.md /tmp/carprice/
COPY src /tmp/carprice/src
RUN [ -n "${PIP_CERT:-}" ] || unset PIP_CERT; \
    /opt/tools/bin/pip install --no-deps --target /opt/carprice /tmp/carprice \
    && PYTHONPATH=/opt/carprice /opt/venv/bin/python -c 'import carprice.runtime._treescore'

FROM ${BASE_IMAGE}
ARG PYTHON3_VERSION=3.11.2-1+b1
ARG LIBGOMP1_VERSION=12.2.0-14+deb12u1
# libgomp1: LightGBM's OpenMP runtime. python3 only when the base image has none.
RUN apt-get update \
    && if command -v python3 >/dev/null; then extra=; else extra=python3=${PYTHON3_VERSION}; fi \
    && apt-get install -y --no-install-recommends libgomp1=${LIBGOMP1_VERSION} $extra \
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
