# streamer worker / simulator image (used by docker-compose.yml)
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
RUN pip install --no-cache-dir .
USER nobody
ENV STREAMER_DATA_DIR=/tmp/streamer
ENTRYPOINT ["streamer"]
CMD ["worker"]
