"""The serving shims: predict ratings, find similar titles and recommend products, in front of the FM and
BlazingText endpoints and from the deployed run's FM factors.

handlers.py holds the three API Lambda handlers (their settings: config.py), title_table.py the pipeline
Lambda that exports the known-title table once per run. Without boto3: parsing.py (the request bodies),
predict.py (ratings; coldstart.py rates a new product from its title in FM's space), similar.py (similar
titles), recommendations.py (top-N), endpoints.py (the endpoints' JSON formats), deployed.py (the run in
memory), vectors.py (the title table and its cosine search). deployment.py keeps the deployed run (record,
index, title table, FM factors, shrinkage, ranking weight) warm; runtime.py calls the endpoints. Settings,
storage, errors, logs and metrics are lambdas/kit's; FM's formats and math are fm/'s.
"""
