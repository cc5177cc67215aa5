# guardian's image: build the wheels in one stage, install them into a slim non-root one.
#   docker build -t guardian:0.1.0 .
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY guardian ./guardian
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN groupadd --gid 10001 guardian \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin guardian \
 && mkdir -p /var/lib/guardian && chown 10001:10001 /var/lib/guardian
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels guardian && rm -rf /wheels
COPY config/slos.yaml /etc/guardian/config/slos.yaml
COPY playbooks /etc/guardian/playbooks
USER 10001:10001
WORKDIR /var/lib/guardian
EXPOSE 8080
ENTRYPOINT ["guardian"]
CMD ["run", "-c", "/etc/guardian/config"]
