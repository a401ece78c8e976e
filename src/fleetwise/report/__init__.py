"""Reports of studies: the plan table and CSV (tables.py), Vega-Lite chart specs shared by the web page and
HTML reports (charts.py), self-contained HTML (html.py) and matplotlib PNG/SVG plots (plots.py, ``[plot]`` extra)."""
