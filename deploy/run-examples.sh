#!/bin/sh
# The app of docker-compose.yml: runs the examples one after the other, forever, so the dashboards always have
# fresh data. Each run exports its pools' metrics over OTLP (OTEL_* variables from docker-compose.yml).
set -u
while true; do
  postgres
  mysql
  neo4j
  sqlite
  sleep 5
done
