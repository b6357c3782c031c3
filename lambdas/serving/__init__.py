"""The serving shims: predict ratings and find similar titles in front of the FM and BlazingText endpoints.

handlers.py holds the two API Lambda handlers, title_table.py the pipeline Lambda that exports the known-title
table once per run. logic.py (requests, FM request building, the cold-start blend) and index.py (the run's
lookups) have no boto3; vectors.py is the one module that imports numpy.
"""
