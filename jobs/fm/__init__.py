"""SageMaker Factorization Machines' model artifact (model.tar.gz) and MXNet's NDArray files, numpy only."""
