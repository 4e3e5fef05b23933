# The seqwatch image: one Python process per container (worker, replay, topics, ...).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/seqwatch
COPY pyproject.toml README.md ./
COPY app ./app
COPY topics ./topics
RUN pip install . && useradd --system --home /var/lib/seqwatch seqwatch \
    && mkdir -p /var/lib/seqwatch && chown seqwatch /var/lib/seqwatch
USER seqwatch
ENV SEQWATCH_TOPICS=/srv/seqwatch/topics/topics.toml SEQWATCH_DATA_DIR=/var/lib/seqwatch
ENTRYPOINT ["seqwatch"]
CMD ["--help"]
