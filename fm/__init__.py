"""SageMaker Factorization Machines' model, numpy only: its artifact (model.tar.gz, MXNet's NDArray files),
read and written the same way by the local trainer, the local runtime server and the cloud's export step.

Shared by every runtime that scores with FM factors: it ships in the Lambda asset and in the prep image.
"""
