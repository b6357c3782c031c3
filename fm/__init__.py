"""SageMaker Factorization Machines' formats, numpy only: its input (RecordIO-protobuf shards, written by the
prep job and read by the local trainer) and its model artifact (model.tar.gz, MXNet's NDArray files), read and
written the same way by the local trainer, the local runtime server and the cloud's export step.

Shared by every runtime that scores with FM factors: it ships in the Lambda asset and in the prep image.
"""
