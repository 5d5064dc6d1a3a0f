# The image docker-compose.yml runs for workers, Beat and the example app.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pyworkflow ./pyworkflow
RUN pip install --no-cache-dir '.[celery,postgres]'
COPY examples ./examples
