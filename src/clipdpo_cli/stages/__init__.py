"""Stages: plain functions from an iterator of records (and a StageContext) to an iterator of records."""
