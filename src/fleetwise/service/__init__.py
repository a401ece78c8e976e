"""The HTTP service (``[web]`` extra): FastAPI app over ``api.run_study``, a study store and the web page.

Entry points: ``create_app`` (app.py), ``Store`` (store.py), ``Limits`` (jobs.py).
"""
