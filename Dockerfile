# c
FROM python:3.12-slim
USER app
