"""Airflow task adapters: the only pipelines code the DAG files call."""
