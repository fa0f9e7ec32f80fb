"""`clipdpo report`: one self-contained HTML page (and optionally PNG files) that shows a run.

data.py and benchmarks.py compute what each figure shows (pure functions over records, testable without
matplotlib), inputs.py reads the files a run leaves, figures.py draws with matplotlib (imported lazily, Agg
canvas), sections.py and benchmark_sections.py make the page's sections, page.py writes the HTML,
settings.py holds the options (ReportSettings), build.py ties them together.
"""
