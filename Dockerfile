# Crewline server and worker image (docker-compose.yml runs `crewline serve`, `crewline worker`
# and `crewline db upgrade` from it).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY gis ./gis
COPY rfid ./rfid
COPY sms_gateway ./sms_gateway
COPY mobile_app ./mobile_app
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed uid: the mqtt service hands the shared password/ACL files to it (CREWLINE_UID).
RUN groupadd --system --gid 10001 crewline \
 && useradd --system --uid 10001 --gid crewline --home-dir /app --create-home \
            --shell /usr/sbin/nologin crewline \
 && install -d -o crewline -g crewline /var/lib/crewline/mqtt-auth /var/lib/crewline/attachments
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
WORKDIR /app
USER crewline
EXPOSE 8000
CMD ["crewline", "serve", "--host", "0.0.0.0", "--port", "8000"]
